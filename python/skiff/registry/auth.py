"""Registry authentication: the ``WWW-Authenticate`` challenge flow and credentials.

A registry answers 401 with a challenge. ``Basic realm=...``: send the credentials
as Basic auth. ``Bearer realm=...,service=...``: get a token from
``realm?service=&scope=repository:<name>:pull[,push]`` (anonymously, or with Basic
auth when there are credentials; with an identity token, by OAuth2 refresh-token
grant), then send ``Authorization: Bearer <token>``. Tokens are cached per
(realm, service, scopes) until they expire.

Credentials come from a docker-compatible ``config.json``: an explicit path, else
``$DOCKER_CONFIG/config.json``, else ``~/.docker/config.json``; entries of ``auths``
are matched by host name (``https://index.docker.io/v1/`` for Docker Hub), with
``auth`` (base64 ``user:password``), ``username``/``password`` or ``identitytoken``.
Credential helpers are run the way docker runs them: ``credHelpers[<registry>]``
first, then ``credsStore`` for every registry, then ``auths``; a helper is the program
``docker-credential-<name>`` asked ``get`` with the server on stdin.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import threading
import time
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from skiff.errors import InvalidArgument, Unauthorized
from skiff.image.reference import DEFAULT_DOMAIN
from skiff.registry.transport import Transport

#: The key Docker stores Docker Hub credentials under.
DOCKER_HUB_KEY: Final = "https://index.docker.io/v1/"
_HUB_HOSTS: Final = frozenset(
    {"index.docker.io", "docker.io", "registry-1.docker.io", "registry.hub.docker.com"}
)
#: Tokens without ``expires_in`` live this long (the distribution spec's minimum).
DEFAULT_TOKEN_TTL: Final = 60
_TOKEN_LIMIT: Final = 1 << 20

_PARAM_RE = re.compile(r'\s*([A-Za-z0-9_.-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,"]*))\s*(,|$)')


@dataclass(frozen=True)
class Challenge:
    scheme: str  # lowercase: "basic", "bearer"
    params: dict[str, str] = field(default_factory=dict)


def parse_challenges(header: str) -> list[Challenge]:
    """The challenges of a ``WWW-Authenticate`` value (``Bearer realm="..",service=".."``)."""
    out: list[Challenge] = []
    text = header.strip()
    while text:
        match = re.match(r"([A-Za-z][A-Za-z0-9_-]*)\s*", text)
        if match is None:
            break
        scheme = match.group(1).lower()
        text = text[match.end() :]
        params: dict[str, str] = {}
        while text:
            pm = _PARAM_RE.match(text)
            if pm is None:
                break
            value = pm.group(2) if pm.group(2) is not None else pm.group(3)
            params[pm.group(1).lower()] = re.sub(r"\\(.)", r"\1", value)
            text = text[pm.end() :]
        out.append(Challenge(scheme, params))
        text = text.lstrip(", ")
    return out


@dataclass(frozen=True)
class Credentials:
    username: str = ""
    password: str = ""
    identity_token: str = ""


def config_path_default() -> Path:
    base = os.environ.get("DOCKER_CONFIG")
    if base:
        return Path(base) / "config.json"
    return Path.home() / ".docker" / "config.json"


def _hostname(key: str) -> str:
    """Docker's ``ConvertToHostname``: scheme and path stripped."""
    for prefix in ("http://", "https://"):
        if key.startswith(prefix):
            key = key[len(prefix) :]
            break
    return key.split("/", 1)[0]


def _matches(key: str, domain: str) -> bool:
    host = _hostname(key)
    if domain == DEFAULT_DOMAIN:
        return host in _HUB_HOSTS
    return host == domain


def load_credentials(
    domain: str, config_path: str | os.PathLike[str] | None = None
) -> Credentials | None:
    """The credentials ``config.json`` holds for registry ``domain`` (a reference's
    domain: ``docker.io``, ``127.0.0.1:5000``), or None. ``config_path`` is the file or
    the directory holding it; by default ``$DOCKER_CONFIG`` or ``~/.docker``."""
    path = Path(config_path) if config_path is not None else config_path_default()
    if path.is_dir():  # a config directory, as ``docker --config`` takes
        path = path / "config.json"
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as err:
        raise InvalidArgument(f"cannot read {path}: {err}") from None
    try:
        config = json.loads(raw) if raw.strip() else {}
    except ValueError as err:
        raise InvalidArgument(f"{path}: invalid JSON: {err}") from None
    if not isinstance(config, dict):
        raise InvalidArgument(f"{path}: not a JSON object")
    # Docker's order: the registry's own helper, then the store for all, then auths.
    helpers = config.get("credHelpers") or {}
    if isinstance(helpers, dict):
        for key, helper in helpers.items():
            if _matches(str(key), domain):
                return helper_credentials(str(helper), _server_url(domain))
    store = config.get("credsStore")
    if isinstance(store, str) and store:
        found = helper_credentials(store, _server_url(domain))
        if found is not None:
            return found
    auths = config.get("auths") or {}
    if not isinstance(auths, dict):
        raise InvalidArgument(f'{path}: "auths" is not an object')
    keys = sorted(auths, key=lambda k: k != DOCKER_HUB_KEY)
    for key in keys:
        if not _matches(str(key), domain):
            continue
        entry = auths[key]
        if not isinstance(entry, dict):
            continue
        creds = _entry_credentials(entry, path, key)
        if creds is not None:
            return creds
    return None


def _server_url(domain: str) -> str:
    """The server name credential helpers store Docker Hub and other registries under."""
    return "https://index.docker.io/v1/" if domain == DEFAULT_DOMAIN else domain


def helper_credentials(helper: str, server: str) -> Credentials | None:
    """Asks ``docker-credential-<helper> get`` the way docker does (the server on
    stdin, JSON with Username and Secret on stdout; ``<token>`` as the user name means
    an identity token). "Not found" answers None; any other failure is clear."""
    import shutil
    import subprocess

    program = f"docker-credential-{helper}"
    if shutil.which(program) is None:
        raise InvalidArgument(
            f"credential helper {program} is not installed (named in config.json)"
        )
    try:
        proc = subprocess.run(
            [program, "get"], input=server.encode(), capture_output=True, timeout=60
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        raise InvalidArgument(f"credential helper {program}: {err}") from None
    if proc.returncode != 0:
        message = (proc.stdout or proc.stderr).decode(errors="replace").strip()
        if "credentials not found" in message.lower():  # the helpers' agreed answer
            return None
        raise InvalidArgument(f"credential helper {program}: {message or proc.returncode}")
    try:
        answer = json.loads(proc.stdout)
        username, secret = str(answer.get("Username", "")), str(answer.get("Secret", ""))
    except (ValueError, AttributeError):
        raise InvalidArgument(f"credential helper {program}: invalid answer") from None
    if username == "<token>":
        return Credentials(identity_token=secret)
    return Credentials(username, secret)


def _entry_credentials(entry: dict[str, Any], path: Path, key: str) -> Credentials | None:
    token = str(entry.get("identitytoken") or "")
    username = str(entry.get("username") or "")
    password = str(entry.get("password") or "")
    encoded = entry.get("auth")
    if encoded:
        try:
            decoded = base64.b64decode(str(encoded), validate=False).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise InvalidArgument(f"{path}: invalid auth for {key}") from None
        username, sep, password = decoded.partition(":")
        if not sep:
            raise InvalidArgument(f"{path}: invalid auth for {key}: no ':'")
    if not (username or password or token):
        return None
    return Credentials(username, password, token)


def basic_header(creds: Credentials) -> str:
    raw = f"{creds.username}:{creds.password}".encode()
    return "Basic " + base64.b64encode(raw).decode()


class Authenticator:
    """Authorization headers for one registry, from its challenges; thread-safe."""

    def __init__(self, transport: Transport, credentials: Credentials | None) -> None:
        self.transport = transport
        self.credentials = credentials
        self._challenge: Challenge | None = None
        self._tokens: dict[tuple[str, str, tuple[str, ...]], tuple[str, float]] = {}
        self._lock = threading.Lock()

    @property
    def challenged(self) -> bool:
        return self._challenge is not None

    def header(self, scopes: Sequence[str]) -> str | None:
        """The Authorization value to send proactively (after a first challenge)."""
        challenge = self._challenge
        if challenge is None:
            return None
        return self._authorize(challenge, scopes, fresh=False)

    def challenge(self, www_authenticate: str, scopes: Sequence[str]) -> str:
        """After a 401: the Authorization value to try again with; Unauthorized when
        there is nothing to try."""
        chosen = None
        for ch in parse_challenges(www_authenticate):
            if ch.scheme == "bearer" and ch.params.get("realm"):
                chosen = ch
                break
            if ch.scheme == "basic" and chosen is None:
                chosen = ch
        if chosen is None:
            raise Unauthorized(f"unsupported authentication challenge {www_authenticate!r}")
        wanted = list(scopes)
        merged = list(wanted)
        extra = chosen.params.get("scope")
        if extra:
            merged += [s for s in extra.split(" ") if s and s not in merged]
        self._challenge = chosen
        header = self._authorize(chosen, merged, fresh=True)
        if chosen.scheme == "bearer" and merged != wanted:
            # The token covers what this client asks for: later requests reuse it.
            key = self._key(chosen, wanted)
            with self._lock:
                self._tokens[key] = self._tokens[self._key(chosen, merged)]
        return header

    @staticmethod
    def _key(challenge: Challenge, scopes: Sequence[str]) -> tuple[str, str, tuple[str, ...]]:
        realm = challenge.params.get("realm", "")
        return realm, challenge.params.get("service", ""), tuple(sorted(scopes))

    def _authorize(self, challenge: Challenge, scopes: Sequence[str], fresh: bool) -> str:
        if challenge.scheme == "basic":
            if self.credentials is None or not self.credentials.username:
                raise Unauthorized("authentication required: no credentials for this registry")
            return basic_header(self.credentials)
        realm = challenge.params["realm"]
        service = challenge.params.get("service", "")
        key = self._key(challenge, scopes)
        with self._lock:
            cached = self._tokens.get(key)
            if cached is not None and not fresh and cached[1] > time.monotonic():
                return "Bearer " + cached[0]
        token, ttl = self._fetch_token(realm, service, scopes)
        with self._lock:
            self._tokens[key] = (token, time.monotonic() + max(ttl - 5, 1))
        return "Bearer " + token

    def _fetch_token(self, realm: str, service: str, scopes: Sequence[str]) -> tuple[str, int]:
        creds = self.credentials
        if creds is not None and creds.identity_token:
            form = {
                "grant_type": "refresh_token",
                "refresh_token": creds.identity_token,
                "client_id": "skiff",
                "service": service,
                "scope": " ".join(scopes),
            }
            resp = self.transport.request(
                "POST",
                realm,
                headers={"Content-Type": "application/x-www-form-urlencoded"},
                body=urllib.parse.urlencode(form).encode(),
            )
        else:
            query = [("service", service)] if service else []
            query += [("scope", s) for s in scopes]
            sep = "&" if "?" in realm else "?"
            url = realm + (sep + urllib.parse.urlencode(query) if query else "")
            headers = {}
            if creds is not None and creds.username:
                headers["Authorization"] = basic_header(creds)
            resp = self.transport.request("GET", url, headers=headers, follow_redirects=True)
        with resp:
            data = resp.read_all(_TOKEN_LIMIT)
            if resp.status in (401, 403):
                raise Unauthorized(f"token request to {realm} refused: {resp.status}")
            if resp.status != 200:
                raise Unauthorized(f"token request to {realm} failed: {resp.status}")
        try:
            answer = json.loads(data)
        except ValueError:
            raise Unauthorized(f"token server {realm} answered with invalid JSON") from None
        token = ""
        if isinstance(answer, dict):
            token = str(answer.get("token") or answer.get("access_token") or "")
        if not token:
            raise Unauthorized(f"token server {realm} sent no token")
        ttl = answer.get("expires_in")
        return token, int(ttl) if isinstance(ttl, int) and ttl > 0 else DEFAULT_TOKEN_TTL
