"""``skiff login`` / ``skiff logout``: check credentials against a registry and keep
them in the docker-compatible ``config.json`` (``auths``, base64 ``user:password``,
the file mode 0600), or forget them. Docker Hub is stored under
``https://index.docker.io/v1/``, other registries under ``host[:port]``, as docker
does. (Credential stores are read by :mod:`skiff.registry.auth`; writing to them is
not done here: a config with ``credsStore`` is refused with a clear error.)
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

from skiff.errors import Forbidden, InvalidArgument, Unauthorized
from skiff.image.reference import DEFAULT_DOMAIN, Reference
from skiff.registry.auth import DOCKER_HUB_KEY, Authenticator, Credentials, config_path_default
from skiff.registry.client import RegistryClient, raise_for


def server_key(server: str | None) -> tuple[str, str]:
    """(domain, config key) for a login argument: none or a Docker Hub name -> docker.io."""
    text = (server or "").strip().removeprefix("https://").removeprefix("http://").rstrip("/")
    if text in ("", "docker.io", "index.docker.io", "index.docker.io/v1", "registry-1.docker.io"):
        return DEFAULT_DOMAIN, DOCKER_HUB_KEY
    if "/" in text:
        raise InvalidArgument(f"invalid registry {server!r}: give host[:port]")
    return text, text


def _config_file(config_path: str | os.PathLike[str] | None) -> Path:
    path = Path(config_path) if config_path is not None else config_path_default()
    return path / "config.json" if path.is_dir() else path


def _read(path: Path) -> dict[str, object]:
    try:
        data = json.loads(path.read_text() or "{}")
    except FileNotFoundError:
        return {}
    except ValueError as err:
        raise InvalidArgument(f"{path}: invalid JSON: {err}") from None
    if not isinstance(data, dict):
        raise InvalidArgument(f"{path}: not a JSON object")
    return data


def _write(path: Path, data: dict[str, object]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent="\t")
    os.replace(tmp, path)


def check_credentials(
    server: str | None,
    credentials: Credentials,
    *,
    config_path: str | os.PathLike[str] | None = None,
) -> None:
    """``GET /v2/`` of the registry with ``credentials`` answering its challenge;
    refused ones raise Unauthorized in docker's words ("login attempt to URL failed
    with status: 401 Unauthorized")."""
    domain, _ = server_key(server)
    client = RegistryClient(Reference(domain, "library/skiff-login"), config_path=config_path)
    client.auth = Authenticator(client.transport, credentials)
    url = client.url("/v2/")
    try:
        resp = client.request("GET", "/v2/")
        with resp:
            if resp.status != 200:
                raise_for(resp, f"login to {domain}")
            resp.read()
    except (Unauthorized, Forbidden) as err:
        status = "401 Unauthorized" if isinstance(err, Unauthorized) else "403 Forbidden"
        raise Unauthorized(f"login attempt to {url} failed with status: {status}") from err
    finally:
        client.close()


def login(
    server: str | None,
    username: str,
    password: str,
    *,
    config_path: str | os.PathLike[str] | None = None,
) -> str:
    """Checks the credentials (``GET /v2/`` answering the registry's challenge) and
    stores them; returns docker's "Login Succeeded". Wrong ones raise Unauthorized."""
    if not username:
        raise InvalidArgument("a username is required")
    check_credentials(server, Credentials(username, password), config_path=config_path)
    _, key = server_key(server)
    path = _config_file(config_path)
    config = _read(path)
    if config.get("credsStore"):
        raise InvalidArgument(
            f"{path}: credentials go to the store {config['credsStore']!r};"
            " storing there is not supported"
        )
    auths = config.setdefault("auths", {})
    if not isinstance(auths, dict):
        raise InvalidArgument(f'{path}: "auths" is not an object')
    auths[key] = {"auth": base64.b64encode(f"{username}:{password}".encode()).decode()}
    _write(path, config)
    return "Login Succeeded"


def logout(server: str | None, *, config_path: str | os.PathLike[str] | None = None) -> str:
    """Forgets the credentials of ``server``; docker's messages."""
    domain, key = server_key(server)
    path = _config_file(config_path)
    config = _read(path)
    auths = config.get("auths")
    if not isinstance(auths, dict) or key not in auths:
        return f"Not logged in to {key if domain != DEFAULT_DOMAIN else DOCKER_HUB_KEY}"
    del auths[key]
    _write(path, config)
    return f"Removing login credentials for {key}"
