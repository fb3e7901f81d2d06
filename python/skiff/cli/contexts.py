"""Named contexts, stored the way the docker CLI stores them, so both CLIs share them.

Layout (``$DOCKER_CONFIG``, default ``~/.docker``; ``skiff --config DIR`` too)::

    config.json                          {"currentContext": "NAME", ...other keys kept}
    contexts/meta/<sha256 of NAME>/meta.json
        {"Name": "NAME", "Metadata": {"Description": "..."},
         "Endpoints": {"docker": {"Host": "unix:///...", "SkipTLSVerify": false}}}

``default`` is built in: ``$SKIFF_HOST``, ``$DOCKER_HOST`` or the default socket.
The daemon a command talks to: ``-H``, else ``--context``, else ``$SKIFF_HOST`` /
``$DOCKER_HOST``, else ``$SKIFF_CONTEXT`` / ``$DOCKER_CONTEXT``, else
``currentContext``, else the default socket (docker's order).

Every command without ``-H`` reads the current context here, so reading is kept
light: no ``json`` (:mod:`skiff.client.fastjson`), ``dataclasses``, ``typing`` or
``pathlib`` on that path.
"""

from __future__ import annotations

import os

from skiff.client.fastjson import loads
from skiff.errors import Conflict, InvalidArgument, NotFound

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any

DEFAULT = "default"
_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.+-")


def config_dir() -> Path:
    from pathlib import Path

    base = os.environ.get("DOCKER_CONFIG")
    return Path(base) if base else Path.home() / ".docker"


def _config_file() -> str:
    base = os.environ.get("DOCKER_CONFIG") or os.path.join(os.path.expanduser("~"), ".docker")
    return os.path.join(base, "config.json")


class Context:
    """One context: its name, its daemon's address, and what it is for."""

    __slots__ = ("description", "host", "name")

    def __init__(self, name: str, host: str, description: str = "") -> None:
        self.name = name
        self.host = host
        self.description = description

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Context) and (self.name, self.host, self.description) == (
            other.name,
            other.host,
            other.description,
        )

    def __hash__(self) -> int:
        return hash((self.name, self.host, self.description))

    def __repr__(self) -> str:
        return f"Context(name={self.name!r}, host={self.host!r}, description={self.description!r})"

    def to_meta(self) -> dict[str, Any]:
        return {
            "Name": self.name,
            "Metadata": {"Description": self.description} if self.description else {},
            "Endpoints": {"docker": {"Host": self.host, "SkipTLSVerify": False}},
        }


def _meta_dir(name: str) -> Path:
    from pathlib import Path

    return Path(_meta_file(name)).parent


def _meta_file(name: str) -> str:
    import hashlib

    base = os.path.dirname(_config_file())
    digest = hashlib.sha256(name.encode()).hexdigest()
    return os.path.join(base, "contexts", "meta", digest, "meta.json")


def _read_config() -> dict[str, Any]:
    path = _config_file()
    try:
        with open(path, "rb") as f:
            data = loads(f.read() or b"{}")
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as err:
        raise InvalidArgument(f"cannot read {path}: {err}") from None
    return data if isinstance(data, dict) else {}


def _write_json(path: Path, data: dict[str, Any], mode: int = 0o644) -> None:
    import json

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent="\t")
    os.replace(tmp, path)


def current_name() -> str:
    """The context chosen by the environment or ``skiff context use``."""
    for var in ("SKIFF_CONTEXT", "DOCKER_CONTEXT"):
        if os.environ.get(var):
            return os.environ[var]
    name = _read_config().get("currentContext")
    return str(name) if name else DEFAULT


def default_context() -> Context:
    from skiff.hosts import DEFAULT_HOST

    host = os.environ.get("SKIFF_HOST") or os.environ.get("DOCKER_HOST") or DEFAULT_HOST
    return Context(DEFAULT, host, "Current DOCKER_HOST based configuration")


def load(name: str) -> Context:
    if name == DEFAULT:
        return default_context()
    try:
        with open(_meta_file(name), "rb") as f:
            meta = loads(f.read())
    except FileNotFoundError:
        raise NotFound(
            f'context "{name}" does not exist; list them with "skiff context ls"'
        ) from None
    except (OSError, ValueError) as err:
        raise InvalidArgument(f'cannot read context "{name}": {err}') from None
    endpoint = (meta.get("Endpoints") or {}).get("docker") or {}
    return Context(
        str(meta.get("Name") or name),
        str(endpoint.get("Host") or ""),
        str((meta.get("Metadata") or {}).get("Description") or ""),
    )


def all_contexts() -> list[Context]:
    out = [default_context()]
    base = config_dir() / "contexts" / "meta"
    try:
        entries = sorted(base.iterdir())
    except FileNotFoundError:
        entries = []
    for entry in entries:
        try:
            meta = loads((entry / "meta.json").read_bytes())
            out.append(load(str(meta["Name"])))
        except (OSError, ValueError, KeyError, NotFound):
            continue
    out[1:] = sorted(out[1:], key=lambda c: c.name)
    return out


def create(name: str, host: str, description: str = "") -> Context:
    from skiff.hosts import parse_host

    valid = name[:1].isalnum() and name.isascii() and set(name) <= _NAME_CHARS
    if not valid or name == DEFAULT:
        raise InvalidArgument(
            f'context name "{name}" is invalid: use letters, digits and _.+- (not "default")'
        )
    if (_meta_dir(name) / "meta.json").exists():
        raise Conflict(f'context "{name}" already exists')
    parse_host(host)  # refuse a bad address now rather than at first use
    ctx = Context(name, host, description)
    _write_json(_meta_dir(name) / "meta.json", ctx.to_meta())
    return ctx


def remove(name: str, force: bool = False) -> None:
    if name == DEFAULT:
        raise InvalidArgument('the "default" context cannot be removed')
    meta = _meta_dir(name)
    if not meta.exists():
        raise NotFound(f'context "{name}" does not exist')
    config = _read_config()
    if config.get("currentContext") == name:
        if not force:
            raise Conflict(
                f'context "{name}" is in use: switch with "skiff context use default" or use -f'
            )
        config.pop("currentContext")
        _write_json(config_dir() / "config.json", config, 0o600)
    for child in meta.iterdir():
        child.unlink()
    meta.rmdir()


def use(name: str) -> None:
    if name != DEFAULT:
        load(name)
    config = _read_config()
    if name == DEFAULT:
        config.pop("currentContext", None)
    else:
        config["currentContext"] = name
    _write_json(config_dir() / "config.json", config, 0o600)
