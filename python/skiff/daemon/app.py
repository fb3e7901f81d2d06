"""The Engine API application: the route table, API version handling and the headers
every answer carries.

Paths are served both bare and under ``/v1.NN/`` for every version from
``MIN_API_VERSION`` to ``API_VERSION``; a version outside that range gets dockerd's
400. Each resource module under ``routes/`` contributes ``ROUTES``: a list of
``(method, pattern, handler)`` where a pattern's ``{name}`` matches one path segment
(``{name:.+}`` any rest of the path, for image names with slashes).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from skiff.daemon.http import Answer, Handler, Request, error_response
from skiff.errors import InvalidArgument
from skiff.version import API_VERSION, MIN_API_VERSION, __version__, parse_api_version

if TYPE_CHECKING:
    from skiff.daemon.state import Daemon

log = logging.getLogger("skiff.daemon.api")

_VERSIONED = re.compile(r"^/v([0-9]+\.[0-9]+)(/.*)$")
_PARAM = re.compile(r"\{(\w+)(?::([^}]+))?\}")

RouteSpec = tuple[str, str, Handler]


@dataclass(frozen=True)
class Route:
    method: str
    regex: re.Pattern[str]
    handler: Handler


def compile_pattern(pattern: str) -> re.Pattern[str]:
    """``/containers/{id}/json`` -> a regex with a named group per parameter."""
    out, pos = [], 0
    for m in _PARAM.finditer(pattern):
        out.append(re.escape(pattern[pos : m.start()]))
        out.append(f"(?P<{m.group(1)}>{m.group(2) or '[^/]+'})")
        pos = m.end()
    out.append(re.escape(pattern[pos:]))
    return re.compile("^" + "".join(out) + "$")


def check_api_version(text: str) -> str:
    """Validates a requested version the way dockerd words it."""
    try:
        wanted = parse_api_version(text)
    except ValueError:
        raise InvalidArgument(f"invalid API version {text!r}") from None
    if wanted < parse_api_version(MIN_API_VERSION):
        raise InvalidArgument(
            f"client version {text} is too old. Minimum supported API version is "
            f"{MIN_API_VERSION}, please upgrade your client to a newer version"
        )
    if wanted > parse_api_version(API_VERSION):
        raise InvalidArgument(
            f"client version {text} is too new. Maximum supported API version is {API_VERSION}"
        )
    return text


class Router:
    def __init__(self, routes: Iterable[RouteSpec]) -> None:
        self._routes = [Route(method, compile_pattern(p), h) for method, p, h in routes]

    async def dispatch(self, request: Request) -> Answer:
        log.debug("Calling %s %s", request.method, request.path)
        m = _VERSIONED.match(request.path)
        if m:
            request.api_version = check_api_version(m.group(1))
            request.path = m.group(2)
        else:
            request.api_version = API_VERSION
        method = "GET" if request.method == "HEAD" else request.method
        for route in self._routes:
            if route.method not in (request.method, method):
                continue
            found = route.regex.match(request.path)
            if found:
                request.params = found.groupdict()
                return await route.handler(request)
        return error_response(404, "page not found")


def common_headers() -> dict[str, str]:
    return {
        "Api-Version": API_VERSION,
        "Docker-Experimental": "false",
        "Ostype": "linux",
        "Server": f"Skiff/{__version__} (linux)",
    }


#: The modules under ``skiff.daemon.routes``, one per API resource; each has
#: ``routes(daemon) -> list[RouteSpec]``.
ROUTE_MODULES = ("system", "containers", "container_stats", "container_fs", "exec", "images")


def build_router(daemon: Daemon) -> Router:
    """All routes of the API, bound to one daemon."""
    import importlib

    specs: list[RouteSpec] = []
    for name in ROUTE_MODULES:
        module = importlib.import_module(f"skiff.daemon.routes.{name}")
        specs.extend(module.routes(daemon))
    return Router(specs)
