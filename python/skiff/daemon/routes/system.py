"""System routes: ``/_ping`` and ``/version`` (``/info``, ``/events`` and ``/system/df``
arrive with the daemon issue)."""

from __future__ import annotations

import platform
from typing import TYPE_CHECKING, Any

from skiff.daemon.http import Request, Response, json_response
from skiff.version import API_VERSION, MIN_API_VERSION, __version__

if TYPE_CHECKING:
    from skiff.daemon.app import RouteSpec
    from skiff.daemon.state import Daemon

_PING_HEADERS = {
    "Builder-Version": "1",
    "Swarm": "inactive",
    "Cache-Control": "no-cache, no-store, must-revalidate",
    "Pragma": "no-cache",
}

#: uname's machine names -> Go's GOARCH names, which Docker clients expect.
_GOARCH = {
    "x86_64": "amd64",
    "aarch64": "arm64",
    "armv7l": "arm",
    "i686": "386",
    "ppc64le": "ppc64le",
    "s390x": "s390x",
}


def goarch() -> str:
    machine = platform.machine()
    return _GOARCH.get(machine, machine)


def version_info(daemon: Daemon) -> dict[str, Any]:
    """``GET /version`` in the Engine API's shape (moby's SystemVersion)."""
    kernel = platform.release()
    arch = goarch()
    details = {
        "ApiVersion": API_VERSION,
        "Arch": arch,
        "BuildTime": daemon.build_time,
        "Experimental": "false",
        "GitCommit": daemon.git_commit,
        "GoVersion": f"python{platform.python_version()}",
        "KernelVersion": kernel,
        "MinAPIVersion": MIN_API_VERSION,
        "Os": "linux",
    }
    return {
        "Platform": {"Name": "Skiff Engine"},
        "Components": [
            {"Name": "Engine", "Version": __version__, "Details": details},
            {
                "Name": "skiff-runtime",
                "Version": daemon.runtime_version or "unknown",
                "Details": {"GitCommit": ""},
            },
        ],
        "Version": __version__,
        "ApiVersion": API_VERSION,
        "MinAPIVersion": MIN_API_VERSION,
        "GitCommit": daemon.git_commit,
        "GoVersion": details["GoVersion"],
        "Os": "linux",
        "Arch": arch,
        "KernelVersion": kernel,
        "BuildTime": daemon.build_time,
    }


def routes(daemon: Daemon) -> list[RouteSpec]:
    async def ping(request: Request) -> Response:
        return Response(
            200, b"OK", content_type="text/plain; charset=utf-8", headers=dict(_PING_HEADERS)
        )

    async def version(request: Request) -> Response:
        return json_response(version_info(daemon))

    return [
        ("GET", "/_ping", ping),
        ("HEAD", "/_ping", ping),
        ("GET", "/version", version),
    ]
