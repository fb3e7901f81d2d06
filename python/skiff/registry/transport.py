"""HTTP for registries on the standard library (``http.client`` + ``ssl``).

- Endpoints: ``docker.io`` is served by ``https://registry-1.docker.io``; ``localhost``,
  ``127.0.0.0/8`` and ``::1`` are insecure registries by default (plain http), as in
  Docker; every other host is https, verified against the system CAs plus the CAs and
  client certificate in its ``certs.d/<host:port>/`` (Docker's layout; a registry with
  a certs.d directory is spoken to over TLS even on loopback). More insecure hosts can
  be named per transport.
- One keep-alive connection per (thread, scheme, host): concurrent downloads each use
  their own. A response read to its end leaves the connection reusable; one closed
  early closes its connection.
- Redirects (blob GETs are sent on to storage) are followed when asked, up to
  ``MAX_REDIRECTS``; the caller's Authorization header is not sent to another host.
- Connection errors and 5xx answers are retried with exponential backoff, a bounded
  number of times, for requests whose body can be sent again.
"""

from __future__ import annotations

import contextlib
import http.client
import ipaddress
import os
import ssl
import threading
import time
import urllib.parse
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Final, Protocol

from skiff.errors import InvalidArgument, Unavailable
from skiff.image.reference import registry_endpoint
from skiff.version import __version__ as _version

DEFAULT_TIMEOUT: Final = 60.0
#: Attempts after the first, for connection errors and 5xx answers.
DEFAULT_RETRIES: Final = 3
DEFAULT_BACKOFF: Final = 0.25
MAX_REDIRECTS: Final = 5
USER_AGENT: Final = f"skiff/{_version}"
#: Block size of request bodies sent from files (uploads).
_BLOCK: Final = 256 * 1024
_REDIRECTS: Final = frozenset({301, 302, 303, 307, 308})
#: What a failed connection raises (resets, timeouts, refused, truncated answers).
CONNECTION_ERRORS: Final = (OSError, http.client.HTTPException)


def split_host(netloc: str) -> tuple[str, int | None]:
    """``host[:port]`` (IPv6 in brackets) -> (host, port)."""
    if netloc.startswith("["):
        host, _, rest = netloc[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    else:
        host, _, port = netloc.partition(":")
    if port and not port.isdigit():
        raise InvalidArgument(f"invalid registry address {netloc!r}")
    return host, int(port) if port else None


def is_insecure_default(netloc: str) -> bool:
    """Whether Docker talks plain http to ``netloc`` without configuration."""
    host, _ = split_host(netloc)
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


#: Where per-registry TLS material lives, as Docker's ``certs.d``: a directory named
#: ``host[:port]`` holding ``*.crt`` (CAs, added to the system's) and ``*.cert`` /
#: ``*.key`` pairs (client certificates). ``SKIFF_CERTS_D`` (colon-separated) overrides.
DEFAULT_CERTS_D: Final = ("/etc/skiff/certs.d", "/etc/docker/certs.d")


def certs_dir(netloc: str) -> Path | None:
    """The certs.d directory configured for ``netloc``, if any."""
    roots = os.environ.get("SKIFF_CERTS_D")
    for root in roots.split(":") if roots else DEFAULT_CERTS_D:
        d = Path(root) / netloc
        if d.is_dir():
            return d
    return None


def tls_context(netloc: str) -> ssl.SSLContext:
    """The system CAs plus ``netloc``'s certs.d CAs and client certificate."""
    ctx = ssl.create_default_context()
    d = certs_dir(netloc)
    if d is None:
        return ctx
    for ca in sorted(d.glob("*.crt")):
        ctx.load_verify_locations(cafile=str(ca))
    for cert in sorted(d.glob("*.cert")):
        key = cert.with_suffix(".key")
        if not key.exists():
            raise InvalidArgument(f"{cert}: missing client key {key.name}")
        ctx.load_cert_chain(str(cert), str(key))
    return ctx


def endpoint(domain: str, insecure: Iterable[str] = ()) -> str:
    """``scheme://host[:port]`` of the registry that serves reference domain ``domain``:
    https, unless the registry is insecure (loopback by default, as Docker) and has
    no certs.d directory (TLS material configured for it means TLS)."""
    host = registry_endpoint(domain)
    plain = (is_insecure_default(host) or host in set(insecure)) and certs_dir(host) is None
    return f"{'http' if plain else 'https'}://{host}"


class Response:
    """An answer; read its body (``read``) or ``close`` it."""

    def __init__(self, raw: http.client.HTTPResponse, conn: http.client.HTTPConnection, url: str):
        self.raw = raw
        self.conn = conn
        self.url = url
        self.status = raw.status
        self.headers = raw.headers

    def header(self, name: str, default: str = "") -> str:
        return self.headers.get(name, default) or default

    def read(self, n: int = -1) -> bytes:
        return self.raw.read(n) if n >= 0 else self.raw.read()

    def read_all(self, limit: int) -> bytes:
        """The whole body; InvalidArgument when it is larger than ``limit``."""
        data = self.raw.read(limit + 1)
        if len(data) > limit:
            self.close()
            raise InvalidArgument(f"response from {self.url} is larger than {limit} bytes")
        self.close()
        return data

    def close(self) -> None:
        if not self.raw.isclosed():
            # Unread body bytes would be taken for the next answer: drop the connection.
            self.raw.close()
            self.conn.close()

    def __enter__(self) -> Response:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class Stream(Protocol):
    """A request body sent in blocks (a file, or a wrapper that counts)."""

    def read(self, n: int = -1, /) -> bytes: ...
    def seek(self, offset: int, whence: int = 0, /) -> int: ...
    def tell(self) -> int: ...
    def seekable(self) -> bool: ...


Body = bytes | Stream | None


class Transport:
    """Keep-alive HTTP(S) connections, one per thread and host."""

    def __init__(
        self,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        retries: int = DEFAULT_RETRIES,
        backoff: float = DEFAULT_BACKOFF,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self._ssl = ssl_context
        self._local = threading.local()
        self._all: list[http.client.HTTPConnection] = []
        self._all_lock = threading.Lock()
        self._contexts: dict[str, ssl.SSLContext] = {}

    def _context(self, netloc: str) -> ssl.SSLContext:
        if self._ssl is not None:
            return self._ssl
        with self._all_lock:
            ctx = self._contexts.get(netloc)
            if ctx is None:
                ctx = self._contexts[netloc] = tls_context(netloc)
        return ctx

    def _conn(self, scheme: str, netloc: str) -> http.client.HTTPConnection:
        pool: dict[tuple[str, str], http.client.HTTPConnection] | None = getattr(
            self._local, "pool", None
        )
        if pool is None:
            pool = self._local.pool = {}
        conn = pool.get((scheme, netloc))
        if conn is None:
            host, port = split_host(netloc)
            if scheme == "https":
                conn = http.client.HTTPSConnection(
                    host,
                    port,
                    timeout=self.timeout,
                    context=self._context(netloc),
                    blocksize=_BLOCK,
                )
            elif scheme == "http":
                conn = http.client.HTTPConnection(
                    host, port, timeout=self.timeout, blocksize=_BLOCK
                )
            else:
                raise InvalidArgument(f"unsupported URL scheme {scheme!r}")
            pool[(scheme, netloc)] = conn
            with self._all_lock:
                self._all.append(conn)
        return conn

    def close(self) -> None:
        """Closes every connection of every thread."""
        with self._all_lock:
            conns, self._all = self._all, []
        for conn in conns:
            with contextlib.suppress(Exception):
                conn.close()

    def _send_once(self, method: str, url: str, headers: Mapping[str, str], body: Body) -> Response:
        parts = urllib.parse.urlsplit(url)
        conn = self._conn(parts.scheme, parts.netloc)
        target = parts.path or "/"
        if parts.query:
            target += "?" + parts.query
        all_headers = {"User-Agent": USER_AGENT, **headers}
        if body is None and method in ("POST", "PUT", "PATCH"):
            all_headers.setdefault("Content-Length", "0")
        try:
            conn.request(method, target, body=body, headers=all_headers)
            raw = conn.getresponse()
        except BaseException:
            conn.close()
            raise
        return Response(raw, conn, url)

    def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        body: Body = None,
        follow_redirects: bool = False,
        retry: bool = True,
    ) -> Response:
        """Sends a request; retries connection errors and 5xx (when ``retry`` and the
        body can be sent again), follows redirects when asked. Unavailable when every
        attempt failed to connect."""
        headers = dict(headers or {})
        if body is not None and not isinstance(body, bytes) and not body.seekable():
            retry = False
        start = body.tell() if body is not None and not isinstance(body, bytes) else 0
        attempts = 1 + (self.retries if retry else 0)
        for attempt in range(attempts):
            if attempt:
                time.sleep(self.backoff * (2 ** (attempt - 1)))
                if body is not None and not isinstance(body, bytes):
                    body.seek(start)
            try:
                resp = self._follow(method, url, headers, body, follow_redirects)
            except ssl.SSLCertVerificationError as err:  # trying again will not help
                raise Unavailable(f"{method} {_redact(url)}: {err}") from err
            except CONNECTION_ERRORS as err:
                if attempt + 1 < attempts:
                    continue
                raise Unavailable(f"{method} {_redact(url)}: {err or type(err).__name__}") from err
            if resp.status >= 500 and attempt + 1 < attempts:
                resp.close()
                continue
            return resp
        raise AssertionError("unreachable")

    def _follow(
        self, method: str, url: str, headers: dict[str, str], body: Body, follow: bool
    ) -> Response:
        origin = urllib.parse.urlsplit(url).netloc
        for _ in range(MAX_REDIRECTS + 1):
            resp = self._send_once(method, url, headers, body)
            if not follow or resp.status not in _REDIRECTS:
                return resp
            location = resp.header("Location")
            resp.read()
            resp.close()
            if not location:
                raise InvalidArgument(f"redirect from {_redact(url)} without a Location")
            url = urllib.parse.urljoin(url, location)
            if urllib.parse.urlsplit(url).netloc != origin:
                headers = {k: v for k, v in headers.items() if k.lower() != "authorization"}
        raise InvalidArgument(f"too many redirects for {_redact(url)}")


def _redact(url: str) -> str:
    """A URL without its query (pre-signed storage URLs carry credentials there)."""
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
