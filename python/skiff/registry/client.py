"""One repository on one registry: ``/v2/<name>/...`` requests with authentication,
and registry errors mapped to Skiff's error classes (404 NotFound, 401 Unauthorized,
403 Forbidden, 5xx Unavailable, other 4xx InvalidArgument)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from typing import Final

from skiff.errors import Forbidden, InvalidArgument, NotFound, SkiffError, Unauthorized, Unavailable
from skiff.image.reference import Reference
from skiff.registry.auth import Authenticator, load_credentials
from skiff.registry.transport import Body, Response, Transport, endpoint

_ERROR_LIMIT: Final = 64 * 1024


class RegistryClient:
    """Requests to repository ``ref.path`` on the registry of ``ref.domain``."""

    def __init__(
        self,
        ref: Reference,
        *,
        push: bool = False,
        config_path: str | os.PathLike[str] | None = None,
        transport: Transport | None = None,
        insecure: Iterable[str] = (),
        base: str | None = None,
    ) -> None:
        self.ref = ref
        # ``base``: another endpoint serving the same names (a mirror of docker.io).
        self.base = base.rstrip("/") if base else endpoint(ref.domain, insecure)
        self.repository = ref.path
        self.transport = transport or Transport()
        self._own_transport = transport is None
        self.scopes = [f"repository:{ref.path}:{'pull,push' if push else 'pull'}"]
        self.auth = Authenticator(self.transport, load_credentials(ref.domain, config_path))

    def close(self) -> None:
        if self._own_transport:
            self.transport.close()

    def url(self, path: str) -> str:
        """The URL of ``/v2/<repository><path>``; absolute URLs are kept."""
        if path.startswith(("http://", "https://")):
            return path
        if path.startswith("/v2/"):
            return self.base + path
        return f"{self.base}/v2/{self.repository}{path}"

    def request(
        self,
        method: str,
        path: str,
        *,
        headers: Mapping[str, str] | None = None,
        body: Body = None,
        follow_redirects: bool = False,
        retry: bool = True,
    ) -> Response:
        """Sends a request, answering one authentication challenge."""
        url = self.url(path)
        sent = dict(headers or {})
        start = body.tell() if body is not None and not isinstance(body, bytes) else 0
        auth = self.auth.header(self.scopes)
        if auth:
            sent["Authorization"] = auth
        resp = self.transport.request(
            method, url, headers=sent, body=body, follow_redirects=follow_redirects, retry=retry
        )
        if resp.status != 401:
            return resp
        challenge = resp.header("WWW-Authenticate")
        resp.read_all(_ERROR_LIMIT)
        if not challenge:
            raise Unauthorized(f"{method} {self.url(path).split('?')[0]}: unauthorized")
        sent["Authorization"] = self.auth.challenge(challenge, self.scopes)
        if body is not None and not isinstance(body, bytes):
            body.seek(start)
        resp = self.transport.request(
            method, url, headers=sent, body=body, follow_redirects=follow_redirects, retry=retry
        )
        if resp.status == 401:
            raise_for(resp, "authentication")
        return resp


def error_text(resp: Response) -> str:
    """``code: message`` of a registry error body (or the status line)."""
    try:
        data = resp.read_all(_ERROR_LIMIT)
    except (SkiffError, OSError):
        data = b""
    try:
        errors = json.loads(data).get("errors") if data else None
    except (ValueError, AttributeError):
        errors = None
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        first = errors[0]
        code = str(first.get("code", "")).lower().replace("_", " ")
        message = str(first.get("message", ""))
        return f"{code}: {message}" if code and message and code != message else message or code
    return f"{resp.status} {resp.raw.reason}".strip()


def raise_for(resp: Response, what: str) -> None:
    """Raises the error class for an unexpected answer (``what`` says what was asked)."""
    text = f"{what}: {error_text(resp)}"
    status = resp.status
    if status == 401:
        raise Unauthorized(text)
    if status == 403:
        raise Forbidden(text)
    if status == 404:
        raise NotFound(text)
    if status >= 500:
        raise Unavailable(text)
    raise InvalidArgument(text)
