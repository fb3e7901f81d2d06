"""Daemon addresses, as dockerd and the docker CLI write them.

``unix:///path/to.sock`` (the default: ``unix:///run/skiff/skiff.sock``), or a bare
absolute path; ``tcp://host:port`` is parsed here but served only with TLS (a later
issue). The client picks its address from ``-H/--host``, then ``SKIFF_HOST``, then
``DOCKER_HOST``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from skiff.errors import InvalidArgument

DEFAULT_SOCKET = "/run/skiff/skiff.sock"
DEFAULT_HOST = f"unix://{DEFAULT_SOCKET}"
DEFAULT_TCP_PORT = 2375


@dataclass(frozen=True)
class Host:
    """A parsed daemon address."""

    scheme: str  # "unix" or "tcp"
    path: str = ""  # unix: the socket path
    hostname: str = ""  # tcp
    port: int = 0  # tcp

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
