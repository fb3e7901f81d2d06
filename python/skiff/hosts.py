"""Daemon addresses, as dockerd and the docker CLI write them.

``unix:///path/to.sock`` (the default: ``unix:///run/skiff/skiff.sock``), or a bare
absolute path; ``tcp://host:port`` is parsed here but served only with TLS (a later
issue). The client picks its address from ``-H/--host``, then ``SKIFF_HOST``, then
``DOCKER_HOST``.
"""

from __future__ import annotations

import os

from skiff.errors import InvalidArgument

TYPE_CHECKING = False  # typing and collections cost the CLI's start a few ms
if TYPE_CHECKING:
    from collections.abc import Mapping

DEFAULT_SOCKET = "/run/skiff/skiff.sock"
DEFAULT_HOST = f"unix://{DEFAULT_SOCKET}"
DEFAULT_TCP_PORT = 2375


class Host:
    """A parsed daemon address (immutable; compares by value).

    A plain class rather than a dataclass: importing ``dataclasses`` (and through it
    ``inspect``) costs the CLI ~9 ms at every start."""

    __slots__ = ("hostname", "path", "port", "scheme")

    scheme: str  # "unix" or "tcp"
    path: str  # unix: the socket path
    hostname: str  # tcp
    port: int  # tcp

    def __init__(self, scheme: str, path: str = "", hostname: str = "", port: int = 0) -> None:
        for name, value in (
            ("scheme", scheme),
            ("path", path),
            ("hostname", hostname),
            ("port", port),
        ):
            object.__setattr__(self, name, value)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"Host is immutable: cannot set {name}")

    def _key(self) -> tuple[str, str, str, int]:
        return (self.scheme, self.path, self.hostname, self.port)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Host) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return (
            f"Host(scheme={self.scheme!r}, path={self.path!r},"
            f" hostname={self.hostname!r}, port={self.port!r})"
        )

    def __str__(self) -> str:
        if self.scheme == "unix":
            return f"unix://{self.path}"
        return f"tcp://{self.hostname}:{self.port}"


def parse_host(text: str) -> Host:
    """Parses a daemon address; raises InvalidArgument with what is wrong."""
    value = text.strip()
    if not value:
        raise InvalidArgument("empty daemon address")
    if value.startswith("/"):
        return Host("unix", path=value)
    scheme, sep, rest = value.partition("://")
    if not sep:
        raise InvalidArgument(
            f"invalid daemon address {text!r}: expected unix:///path or tcp://host:port"
        )
    if scheme == "unix":
        if not rest.startswith("/"):
            raise InvalidArgument(
                f"invalid daemon address {text!r}: the socket path must be absolute"
            )
        return Host("unix", path=rest)
    if scheme == "tcp":
        hostport = rest.rstrip("/")
        hostname, colon, port_text = hostport.rpartition(":")
        if not colon:
            hostname, port_text = hostport, str(DEFAULT_TCP_PORT)
        hostname = hostname.strip("[]")
        if not hostname or not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise InvalidArgument(f"invalid daemon address {text!r}: expected tcp://host:port")
        return Host("tcp", hostname=hostname, port=int(port_text))
    raise InvalidArgument(f"invalid daemon address {text!r}: unsupported scheme {scheme!r}")


def client_host(flag: str | None, environ: Mapping[str, str] = os.environ) -> Host:
    """The address a client talks to: the flag, then SKIFF_HOST, then DOCKER_HOST."""
    for value in (flag, environ.get("SKIFF_HOST"), environ.get("DOCKER_HOST")):
        if value:
            return parse_host(value)
    return parse_host(DEFAULT_HOST)
