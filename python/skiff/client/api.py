"""A small Docker Engine API client over a unix socket (or plain TCP).

HTTP/1.1 is spoken directly on the socket (no ``http.client``: it imports ``ssl`` and
``email``, which cost the CLI tens of milliseconds at every start; and ``_socket``
rather than ``socket``, whose enum tables cost a few more). Three kinds of exchange:

- :meth:`APIClient.request` — one buffered answer on a kept-alive connection;
- :meth:`APIClient.stream` — a long answer read as it comes (chunked JSON lines for
  pull/push/events/stats, multiplexed frames for logs), on a connection of its own;
- :meth:`APIClient.hijack` — attach and exec start: ``101 UPGRADED``, then the raw
  socket both ways (:class:`Hijacked`), stdin ended with a half-close.

The API version is negotiated once with ``HEAD /_ping`` the way the docker CLI does
(the lower of ours and the daemon's; 1.24 when the daemon names none);
:meth:`APIClient.ping_ahead` sends that ping early and reads its answer on first need,
so that the daemon answers it while the CLI is still importing and parsing. Requests
on connections of their own can be in flight together: :meth:`APIClient.send_stream`
and :meth:`APIClient.send_hijack` send, :class:`Pending` reads the answer later. Error
answers become the classes of ``skiff.errors`` by status code.

JSON is :mod:`skiff.client.fastjson` (``import json`` alone costs the CLI ~10 ms).
"""

from __future__ import annotations

import _socket
import io

from skiff.client.fastjson import dumps, loads
from skiff.errors import SkiffError, Unavailable, from_status
from skiff.version import API_VERSION, parse_api_version

TYPE_CHECKING = False  # typing itself costs the CLI's start ~10 ms

#: What the docker CLI assumes of a daemon that does not say its version.
FALLBACK_API_VERSION = "1.24"

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator
    from typing import IO, Any

    from skiff.hosts import Host

    #: Request bodies: bytes, or an iterable of chunks (sent chunked), or a binary file.
    Body = bytes | Iterable[bytes] | IO[bytes] | None


class Response:
    """A buffered answer: status, headers (lower-case names) and body."""

    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def json(self) -> Any:
        return loads(self.body) if self.body else None


class ProtocolError(Unavailable):
    """The daemon's answer is not HTTP we understand, or it ended too soon."""


class _RawSocket(io.RawIOBase):
    """The read side of a socket as a raw stream (what io.BufferedReader wraps)."""

    def __init__(self, sock: _socket.socket) -> None:
        self._sock = sock

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        return self._sock.recv_into(buffer)


class Connection:
    """One HTTP/1.1 connection: a socket and a buffered reader over it."""

    def __init__(self, host: Host, timeout: float | None) -> None:
        if host.scheme == "unix":
            sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
            address: Any = host.path
        else:
            family = _socket.AF_INET6 if ":" in host.hostname else _socket.AF_INET
            sock = _socket.socket(family, _socket.SOCK_STREAM)
            address = (host.hostname, host.port)
        try:
            sock.settimeout(timeout)
            sock.connect(address)
        except BaseException:
            sock.close()
            raise
        self.sock = sock
        self.rfile = io.BufferedReader(_RawSocket(sock), 65536)
        self.closed = False

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.rfile.close()
            self.sock.close()

    def send(self, method: str, url: str, headers: dict[str, str], body: Body) -> None:
        head = [f"{method} {url} HTTP/1.1", "Host: docker"]
        head += [f"{k}: {v}" for k, v in headers.items()]
        chunks: Iterable[bytes] | None = None
        if body is None:
            if method in ("POST", "PUT"):
                head.append("Content-Length: 0")
        elif isinstance(body, bytes):
            head.append(f"Content-Length: {len(body)}")
        else:
            head.append("Transfer-Encoding: chunked")
            if hasattr(body, "read"):
                reader: IO[bytes] = body  # type: ignore[assignment]
                chunks = iter(lambda: reader.read(1 << 16), b"")
            else:
                chunks = body
        data = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1")
        if isinstance(body, bytes):
            data += body
        self.sock.sendall(data)
        if chunks is not None:
            for chunk in chunks:
                if chunk:
                    self.sock.sendall(b"%x\r\n%b\r\n" % (len(chunk), chunk))
            self.sock.sendall(b"0\r\n\r\n")

    def read_head(self) -> tuple[int, dict[str, str]]:
        line = self.rfile.readline(65537)
        if not line:
            raise ConnectionResetError("the daemon closed the connection")
        parts = line.decode("latin-1").split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
            raise ProtocolError(f"malformed answer from the daemon: {line[:80]!r}")
        headers: dict[str, str] = {}
        while True:
            hline = self.rfile.readline(65537)
            if hline in (b"\r\n", b"\n"):
                break
            if not hline:
                raise ProtocolError("the daemon's answer ended inside its headers")
            name, _, value = hline.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        return int(parts[1]), headers


class BodyReader:
    """The body of one answer, read as it arrives (content-length, chunked, or to EOF)."""

    def __init__(self, conn: Connection, status: int, headers: dict[str, str], method: str):
        self.conn = conn
        self.left: int | None = None  # bytes left: in the body, or in the current chunk
        self.chunked = "chunked" in headers.get("transfer-encoding", "").lower()
        self.done = method == "HEAD" or status in (204, 304) or 100 <= status < 200
        if not self.done and not self.chunked and "content-length" in headers:
            self.left = int(headers["content-length"])
            self.done = self.left == 0
        self.keep_alive = headers.get("connection", "").lower() != "close" and (
            self.chunked or self.left is not None or self.done
        )

    def read1(self, n: int = 1 << 16) -> bytes:
        """Up to ``n`` bytes as soon as some are there; b"" at the end."""
        rfile = self.conn.rfile
        while not self.done:
            if self.chunked:
                if not self.left:
                    size_line = rfile.readline(1024)
                    if not size_line:
                        raise ProtocolError("the daemon's answer ended inside a chunk")
                    size_text = size_line.split(b";")[0].strip()
                    if not size_text:
                        continue  # the CRLF after the previous chunk
                    self.left = int(size_text, 16)
                    if self.left == 0:
                        while rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                            pass  # trailers
                        self.done = True
                        return b""
                data = rfile.read1(min(n, self.left))
                if not data:
                    raise ProtocolError("the daemon's answer ended inside a chunk")
                self.left -= len(data)
                if self.left == 0:
                    rfile.readline(3)  # CRLF after the chunk
                return data
            if self.left is not None:
                data = rfile.read1(min(n, self.left))
                if not data:
                    raise ProtocolError("the daemon's answer ended too soon")
                self.left -= len(data)
                self.done = self.left == 0
                return data
            data = rfile.read1(n)
            if not data:
                self.done = True
            return data
        return b""

    def read_all(self) -> bytes:
        parts = []
        while chunk := self.read1(1 << 20):
            parts.append(chunk)
        return b"".join(parts)


class Stream:
    """A streamed answer on its own connection; close it (or read it to the end)."""

    def __init__(self, conn: Connection, status: int, headers: dict[str, str], body: BodyReader):
        self.conn = conn
        self.status = status
        self.headers = headers
        self.body = body
        self._buf = b""

    def read1(self, n: int = 1 << 16) -> bytes:
        if self._buf:
            data, self._buf = self._buf[:n], self._buf[n:]
            return data
        return self.body.read1(n)

    def read_exact(self, n: int) -> bytes:
        """``n`` bytes, or fewer only at the end of the answer."""
        parts, got = [], 0
        while got < n:
            data = self.read1(n - got)
            if not data:
                break
            parts.append(data)
            got += len(data)
        return b"".join(parts)

    def chunks(self) -> Iterator[bytes]:
        while data := self.read1():
            yield data

    def lines(self) -> Iterator[bytes]:
        while True:
            nl = self._buf.find(b"\n")
            if nl >= 0:
                line, self._buf = self._buf[: nl + 1], self._buf[nl + 1 :]
                yield line
                continue
            data = self.body.read1()
            if not data:
                if self._buf:
                    line, self._buf = self._buf, b""
                    yield line
                return
            self._buf += data

    def json_lines(self) -> Iterator[Any]:
        """Each non-empty line as JSON (pull/push progress, events, stats)."""
        for line in self.lines():
            if line.strip():
                yield loads(line)

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Stream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Hijacked:
    """The raw connection after ``101 UPGRADED`` (attach, exec start)."""

    def __init__(self, conn: Connection, content_type: str) -> None:
        self.conn = conn
        self.sock = conn.sock
        self.content_type = content_type
        #: Without a tty the daemon frames stdout/stderr (``[stream,0,0,0,len]``).
        self.multiplexed = content_type == "application/vnd.docker.multiplexed-stream"
        self.sock.settimeout(None)

    def read1(self, n: int = 1 << 16) -> bytes:
        try:
            return self.conn.rfile.read1(n)
        except (ConnectionResetError, OSError, ValueError):
            return b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def close_write(self) -> None:
        """Half-close: the daemon sees the end of stdin, output keeps coming."""
        try:  # not contextlib.suppress: importing contextlib costs the CLI's start
            self.sock.shutdown(_socket.SHUT_WR)
        except OSError:
            return

    def shutdown(self) -> None:
        """Ends both directions now (a detach): a blocked read returns b""."""
        try:  # not contextlib.suppress: importing contextlib costs the CLI's start
            self.sock.shutdown(_socket.SHUT_RDWR)
        except OSError:
            return

    def close(self) -> None:
        self.conn.close()


class APIClient:
    """``on_unreachable(host)``, when given, is called once when nothing listens at the
    address (no socket, or refused); if it returns True the connection is tried again
    (the CLI starts an embedded daemon this way)."""

    def __init__(
        self,
        host: Host,
        timeout: float | None = 60.0,
        on_unreachable: Callable[[Host], bool] | None = None,
    ) -> None:
        self.host = host
        self.timeout = timeout
        self.on_unreachable = on_unreachable
        self._conn: Connection | None = None
        self._api_version: str | None = None
        #: A ``HEAD /_ping`` sent on ``_conn`` whose answer is still to be read.
        self._ping_sent = False

    # -- transport ---------------------------------------------------------------

    def close(self) -> None:
        self._ping_sent = False
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> APIClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _unreachable(self, err: OSError) -> Unavailable:
        if isinstance(err, PermissionError):
            return Unavailable(
                f"permission denied while trying to connect to the daemon socket at {self.host}"
            )
        return Unavailable(
            f"Cannot connect to the Skiff daemon at {self.host}. "
            f"Is skiffd running? ({err.strerror or err})"
        )

    def _connect(self, timeout: float | None) -> Connection:
        try:
            return Connection(self.host, timeout)
        except (FileNotFoundError, ConnectionRefusedError) as err:
            hook, self.on_unreachable = self.on_unreachable, None
            if hook is None or not hook(self.host):
                raise self._unreachable(err) from err
        except OSError as err:
            raise self._unreachable(err) from err
        try:
            return Connection(self.host, timeout)
        except OSError as err:
            raise self._unreachable(err) from err

    def _url(self, path: str, params: dict[str, Any] | None) -> str:
        if not params:
            return _quote(path, "/:@")
        pairs: list[tuple[str, str]] = []
        for k, v in params.items():
            if v is None:
                continue
            if isinstance(v, tuple):  # a repeated parameter (?changes=a&changes=b)
                pairs.extend((k, _param(item)) for item in v)
            else:
                pairs.append((k, _param(v)))
        if not pairs:
            return _quote(path, "/:@")
        query = "&".join(f"{_quote(k, '')}={_quote(v, '')}" for k, v in pairs)
        return f"{_quote(path, '/:@')}?{query}"

    def _headers(self, headers: dict[str, str] | None, body: Any) -> dict[str, str]:
        out = {"User-Agent": "skiff-cli"}
        if isinstance(body, bytes) and body[:1] in (b"{", b"["):
            out["Content-Type"] = "application/json"
        out.update(headers or {})
        return out

    def raw_request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        body: Body = None,
        headers: dict[str, str] | None = None,
    ) -> Response:
        """Sends one request to an exact path (no version prefix) and reads the answer."""
        url = self._url(path, params)
        send_headers = self._headers(headers, body)
        is_ping = method == "HEAD" and url == "/_ping"
        if self._ping_sent and not is_ping:
            # The ping sent ahead is answered first on this connection: read it now.
            negotiated = self._negotiate()
            self._api_version = self._api_version or negotiated
        # A kept-alive connection the daemon has closed fails on first use: retry once
        # (the ping sent ahead included: it was sent, not answered).
        for attempt in (0, 1):
            sent = self._ping_sent and is_ping
            self._ping_sent = False
            fresh = self._conn is None
            if self._conn is None:
                self._conn = self._connect(self.timeout)
            conn = self._conn
            try:
                if not sent:
                    conn.send(method, url, send_headers, body)
                status, resp_headers = conn.read_head()
                reader = BodyReader(conn, status, resp_headers, method)
                data = reader.read_all()
            except (ConnectionResetError, BrokenPipeError) as err:
                self.close()
                if attempt or fresh or not isinstance(body, bytes | None):
                    raise self._unreachable(err) from err
                continue
            except OSError as err:
                self.close()
                raise self._unreachable(err) from err
            if not reader.keep_alive:
                self.close()
            return Response(status, resp_headers, data)
        raise AssertionError("unreachable")

    def ping_ahead(self) -> None:
        """Sends the version negotiation's ``HEAD /_ping`` now; its answer is read when
        the version is first needed. Quiet when nothing answers (the request that needs
        the version will connect again, and say so, or start the embedded daemon)."""
        if self._api_version is not None or self._conn is not None:
            return
        try:
            conn = Connection(self.host, self.timeout)
        except OSError:
            return
        try:
            conn.send("HEAD", "/_ping", self._headers(None, None), None)
        except OSError:
            conn.close()
            return
        self._conn = conn
        self._ping_sent = True

    # -- API ---------------------------------------------------------------------

    @property
    def api_version(self) -> str:
        """The version both sides speak, negotiated on first use."""
        if self._api_version is None:
            self._api_version = self._negotiate()
        return self._api_version

    def _negotiate(self) -> str:
        theirs = self.ping().headers.get("api-version") or FALLBACK_API_VERSION
        try:
            lower = min(parse_api_version(theirs), parse_api_version(API_VERSION))
        except ValueError:
            lower = parse_api_version(FALLBACK_API_VERSION)
        return f"{lower[0]}.{lower[1]}"

    def request(self, method: str, path: str, **kwargs: Any) -> Response:
        """A versioned request; error answers raise the matching SkiffError."""
        resp = self.raw_request(method, f"/v{self.api_version}{path}", **kwargs)
        if resp.status >= 400:
            raise _error_from(resp.status, resp.body)
        return resp

    def get(self, path: str, **params: Any) -> Any:
        """``GET path?params`` and its JSON answer."""
        return self.request("GET", path, params=params).json()

    def post(self, path: str, body: Any = None, **params: Any) -> Any:
        """``POST path?params`` with an optional JSON body; its JSON answer (or None)."""
        data = None if body is None else dumps(body).encode()
        return self.request("POST", path, params=params, body=data).json()

    def stream(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        body: Body = None,
        headers: dict[str, str] | None = None,
        timeout: float | None = None,
    ) -> Stream:
        """A versioned request whose answer is read as it comes, on a new connection."""
        pending = self.send_stream(
            method, path, params=params, body=body, headers=headers, timeout=timeout
        )
        return pending.stream()

    def send_stream(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        body: Body = None,
        headers: dict[str, str] | None = None,
        timeout: float | None = None,
    ) -> Pending:
        """:meth:`stream`'s request, sent; ``.stream()`` on the result waits for the answer."""
        return self._send_own(method, path, params, body, headers, timeout)

    def hijack(self, path: str, body: Any = None, **params: Any) -> Hijacked:
        """``POST`` asking to upgrade the connection; the raw stream after the 101."""
        return self.send_hijack(path, body, **params).hijacked()

    def send_hijack(self, path: str, body: Any = None, **params: Any) -> Pending:
        """:meth:`hijack`'s request, sent; ``.hijacked()`` on the result waits for the 101."""
        data = None if body is None else dumps(body).encode()
        upgrade = {"Connection": "Upgrade", "Upgrade": "tcp"}
        return self._send_own("POST", path, params, data, upgrade, self.timeout)

    def _send_own(
        self,
        method: str,
        path: str,
        params: dict[str, Any] | None,
        body: Body,
        headers: dict[str, str] | None,
        timeout: float | None,
    ) -> Pending:
        version = self.api_version
        conn = self._connect(timeout)
        try:
            conn.send(
                method,
                self._url(f"/v{version}{path}", params),
                self._headers(headers, body),
                body,
            )
        except OSError as err:
            conn.close()
            raise self._unreachable(err) from err
        except BaseException:
            conn.close()
            raise
        return Pending(self, conn, method)

    def ping(self) -> Response:
        resp = self.raw_request("HEAD", "/_ping")
        if resp.status >= 400:
            resp = self.raw_request("GET", "/_ping")
        if resp.status >= 400:
            raise _error_from(resp.status, resp.body)
        return resp

    def version(self) -> dict[str, Any]:
        result: dict[str, Any] = self.request("GET", "/version").json()
        return result


class Pending:
    """A request sent on a connection of its own, its answer not read yet: several can
    be in flight at once (``run`` sends attach and wait together). Read it with
    :meth:`stream` or :meth:`hijacked`, or :meth:`close` it."""

    def __init__(self, client: APIClient, conn: Connection, method: str) -> None:
        self.client = client
        self.conn = conn
        self.method = method

    def _head(self) -> tuple[int, dict[str, str]]:
        conn = self.conn
        try:
            status, headers = conn.read_head()
            if status >= 400:
                raise _error_from(status, BodyReader(conn, status, headers, self.method).read_all())
        except OSError as err:
            conn.close()
            raise self.client._unreachable(err) from err
        except BaseException:
            conn.close()
            raise
        return status, headers

    def stream(self) -> Stream:
        """The answer, read as it comes; error answers raise."""
        status, headers = self._head()
        return Stream(
            self.conn, status, headers, BodyReader(self.conn, status, headers, self.method)
        )

    def hijacked(self) -> Hijacked:
        """The raw connection after the daemon's ``101``; error answers raise."""
        _, headers = self._head()
        return Hijacked(self.conn, headers.get("content-type", ""))

    def close(self) -> None:
        self.conn.close()


_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~")


def _quote(text: str, safe: str) -> str:
    """Percent-encoding of everything but RFC 3986's unreserved characters and ``safe``."""
    if all(c in _UNRESERVED or c in safe for c in text):
        return text
    return "".join(
        c if c in _UNRESERVED or c in safe else "".join(f"%{b:02X}" for b in c.encode())
        for c in text
    )


def _param(value: Any) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, dict | list):
        return dumps(value)
    return str(value)


def _error_from(status: int, body: bytes) -> SkiffError:
    message = ""
    try:
        payload = loads(body) if body else None
        if isinstance(payload, dict):
            message = str(payload.get("message", ""))
    except ValueError:
        message = body.decode(errors="replace").strip()
    err = from_status(status, message or f"daemon answered {status}")
    err.from_daemon = True
    return err
