"""A small Docker Engine API client over a unix socket (or plain TCP).

One keep-alive connection; the API version is negotiated once with ``HEAD /_ping``
the way the docker CLI does (the lower of ours and the daemon's; 1.24 when the daemon
names none). Error answers become the classes of ``skiff.errors`` by status code.
"""

from __future__ import annotations

import http.client
import json
import socket
from typing import Any
from urllib.parse import urlencode

from skiff.errors import SkiffError, Unavailable, from_status
from skiff.hosts import Host
from skiff.version import API_VERSION, parse_api_version

#: What the docker CLI assumes of a daemon that does not say its version.
FALLBACK_API_VERSION = "1.24"


class UnixHTTPConnection(http.client.HTTPConnection):
    """http.client over an AF_UNIX stream socket."""

    def __init__(self, path: str, timeout: float | None = None) -> None:
        super().__init__("localhost", timeout=timeout)
        self.socket_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            if self.timeout is not None:
                sock.settimeout(self.timeout)
            sock.connect(self.socket_path)
        except BaseException:
            sock.close()
            raise
        self.sock = sock


class Response:
    """A buffered answer: status, headers and body."""

    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


class APIClient:
    def __init__(self, host: Host, timeout: float | None = 60.0) -> None:
        self.host = host
        self.timeout = timeout
        self._conn: http.client.HTTPConnection | None = None
        self._api_version: str | None = None

    # -- transport ---------------------------------------------------------------

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            if self.host.scheme == "unix":
                self._conn = UnixHTTPConnection(self.host.path, timeout=self.timeout)
            else:
                self._conn = http.client.HTTPConnection(
                    self.host.hostname, self.host.port, timeout=self.timeout
                )
        return self._conn

    def close(self) -> None:
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

    def raw_request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Response:
        """Sends one request to an exact path (no version prefix) and reads the answer."""
        url = path
        if params:
            query = {k: _param(v) for k, v in params.items() if v is not None}
            if query:
                url = f"{path}?{urlencode(query)}"
        send_headers = {"User-Agent": "skiff-cli", **(headers or {})}
        # A kept-alive connection the daemon has closed fails on first use: retry once.
        for attempt in (0, 1):
            conn = self._connection()
            try:
                conn.request(method, url, body=body, headers=send_headers)
                resp = conn.getresponse()
                data = resp.read()
            except (ConnectionResetError, BrokenPipeError, http.client.RemoteDisconnected) as err:
                self.close()
                if attempt:
                    raise self._unreachable(err) from err
                continue
            except OSError as err:
                self.close()
                raise self._unreachable(err) from err
            if resp.will_close:
                self.close()
            return Response(resp.status, {k.lower(): v for k, v in resp.getheaders()}, data)
        raise AssertionError("unreachable")

    # -- API ---------------------------------------------------------------------

    @property
    def api_version(self) -> str:
        """The version both sides speak, negotiated on first use."""
        if self._api_version is None:
            theirs = self.ping().headers.get("api-version") or FALLBACK_API_VERSION
            try:
                lower = min(parse_api_version(theirs), parse_api_version(API_VERSION))
            except ValueError:
                lower = parse_api_version(FALLBACK_API_VERSION)
            self._api_version = f"{lower[0]}.{lower[1]}"
        return self._api_version

    def request(self, method: str, path: str, **kwargs: Any) -> Response:
        """A versioned request; error answers raise the matching SkiffError."""
        resp = self.raw_request(method, f"/v{self.api_version}{path}", **kwargs)
        if resp.status >= 400:
            raise _error_from(resp)
        return resp

    def ping(self) -> Response:
        resp = self.raw_request("HEAD", "/_ping")
        if resp.status >= 400:
            resp = self.raw_request("GET", "/_ping")
        if resp.status >= 400:
            raise _error_from(resp)
        return resp

    def version(self) -> dict[str, Any]:
        result: dict[str, Any] = self.request("GET", "/version").json()
        return result


def _param(value: Any) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, dict | list):
        return json.dumps(value)
    return str(value)


def _error_from(resp: Response) -> SkiffError:
    message = ""
    try:
        payload = resp.json()
        if isinstance(payload, dict):
            message = str(payload.get("message", ""))
    except ValueError:
        message = resp.body.decode(errors="replace").strip()
    err = from_status(resp.status, message or f"daemon answered {resp.status}")
    err.from_daemon = True
    return err
