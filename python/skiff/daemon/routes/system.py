"""System routes: ``/_ping``, ``/version``, ``/info``, ``/events`` and ``/system/df``."""

from __future__ import annotations

import asyncio
import contextlib
import os
import platform
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from skiff import jsontext
from skiff.daemon.http import Request, Response, StreamResponse, json_response
from skiff.engine.events import EventFilter
from skiff.engine.filters import parse_filters
from skiff.engine.logs import parse_time_arg
from skiff.errors import InvalidArgument
from skiff.timefmt import rfc3339_nano
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


def _mem_total() -> int:
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    return 0


def _cgroup_version() -> str:
    return "2" if Path("/sys/fs/cgroup/cgroup.controllers").exists() else "1"


def info(daemon: Daemon) -> dict[str, Any]:
    """``GET /info`` in moby's SystemInfo shape (the fields clients read)."""
    containers = daemon.containers.all()
    states = [c.state.status for c in containers]
    images = daemon.images.meta.list_images() if daemon.images is not None else []
    uname = os.uname()
    return {
        "ID": daemon.engine_id,
        "Containers": len(containers),
        "ContainersRunning": states.count("running"),
        "ContainersPaused": states.count("paused"),
        "ContainersStopped": len(states) - states.count("running") - states.count("paused"),
        "Images": len(images),
        "Driver": "overlay2",
        "DriverStatus": [["Backing Filesystem", "extfs"], ["Supports d_type", "true"]],
        "Plugins": {
            "Volume": ["local"],
            "Network": ["host", "null"],
            "Authorization": None,
            "Log": ["json-file", "none"],
        },
        "MemoryLimit": True,
        "SwapLimit": True,
        "CpuCfsPeriod": True,
        "CpuCfsQuota": True,
        "CPUShares": True,
        "CPUSet": True,
        "PidsLimit": True,
        "IPv4Forwarding": True,
        "Debug": daemon.config.debug,
        "NFd": len(os.listdir("/proc/self/fd")),
        "NGoroutines": threading.active_count(),
        "SystemTime": rfc3339_nano(),
        "LoggingDriver": daemon.config.log_driver,
        "CgroupDriver": "cgroupfs",
        "CgroupVersion": _cgroup_version(),
        "NEventsListener": daemon.events.listeners,
        "KernelVersion": uname.release,
        "OperatingSystem": _os_name(),
        "OSVersion": "",
        "OSType": "linux",
        "Architecture": uname.machine,
        "IndexServerAddress": "https://index.docker.io/v1/",
        "RegistryConfig": {
            "IndexConfigs": {},
            "InsecureRegistryCIDRs": ["127.0.0.0/8", "::1/128"],
            "Mirrors": list(daemon.config.registry_mirrors),
        },
        "NCPU": os.cpu_count() or 1,
        "MemTotal": _mem_total(),
        "DockerRootDir": str(daemon.data_root),
        "Name": uname.nodename,
        "Labels": [],
        "ExperimentalBuild": False,
        "ServerVersion": __version__,
        "Runtimes": {"skiff-runtime": {"path": "skiff-runtime"}},
        "DefaultRuntime": "skiff-runtime",
        "Swarm": {
            "NodeID": "",
            "NodeAddr": "",
            "LocalNodeState": "inactive",
            "ControlAvailable": False,
            "Error": "",
            "RemoteManagers": None,
        },
        "LiveRestoreEnabled": daemon.config.live_restore,
        "Isolation": "",
        "InitBinary": "docker-init",
        "SecurityOptions": ["name=seccomp,profile=builtin"]
        + (["name=cgroupns"] if _cgroup_version() == "2" else []),
        "Warnings": [],
    }


def _os_name() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip('"')
    return "Linux"


def routes(daemon: Daemon) -> list[RouteSpec]:
    async def ping(request: Request) -> Response:
        return Response(
            200, b"OK", content_type="text/plain; charset=utf-8", headers=dict(_PING_HEADERS)
        )

    async def version(request: Request) -> Response:
        return json_response(version_info(daemon))

    async def info_(request: Request) -> Response:
        return json_response(await asyncio.to_thread(info, daemon))

    async def events(request: Request) -> StreamResponse:
        accept = EventFilter(parse_filters(request.arg("filters"), EventFilter.NAMES))
        since = _event_time(request.arg("since"))
        until = _event_time(request.arg("until"))
        if since is not None and until is not None and until < since:
            raise InvalidArgument("`since` time must be before `until` time")

        async def body() -> AsyncIterator[bytes]:
            async for event in daemon.events.stream(accept, since, until):
                yield jsontext.dumps(event.to_json()) + b"\n"

        return StreamResponse(body())

    async def df(request: Request) -> Response:
        return json_response(await asyncio.to_thread(disk_usage, daemon))

    return [
        ("GET", "/_ping", ping),
        ("HEAD", "/_ping", ping),
        ("GET", "/version", version),
        ("GET", "/info", info_),
        ("GET", "/events", events),
        ("GET", "/system/df", df),
    ]


def _event_time(text: str | None) -> int | None:
    """since/until of /events (unix seconds, fractions, or RFC 3339) in nanoseconds."""
    if not text:
        return None
    seconds = parse_time_arg(text)
    return int(seconds * 1_000_000_000)


def disk_usage(daemon: Daemon) -> dict[str, Any]:
    """``GET /system/df``: images, containers (with their writable layer size),
    volumes and build cache (none)."""
    images = daemon.images.images() if daemon.images is not None else []
    in_use: dict[str, int] = {}
    for c in daemon.containers.all():
        in_use[c.image_id] = in_use.get(c.image_id, 0) + 1
    for img in images:
        img["Containers"] = in_use.get(img["Id"], 0)
        img["SharedSize"] = 0
    containers = daemon.containers.list(all=True, size=True)
    layers_size = (
        sum(int(layer.size) for layer in daemon.images.meta.list_layers()) if daemon.images else 0
    )
    return {
        "LayersSize": layers_size,
        "Images": images,
        "Containers": containers,
        "Volumes": [],
        "BuildCache": [],
    }
