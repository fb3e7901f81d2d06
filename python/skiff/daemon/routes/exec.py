"""Exec routes: ``POST /containers/{id}/exec``, ``POST /exec/{id}/start`` (hijacked
unless detached), ``POST /exec/{id}/resize``, ``GET /exec/{id}/json``."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from skiff.daemon.http import Hijack, Request, Response, json_response
from skiff.engine.execs import ExecService, console_size_arg
from skiff.errors import InvalidArgument
from skiff.version import parse_api_version

if TYPE_CHECKING:
    from skiff.daemon.app import RouteSpec
    from skiff.daemon.state import Daemon

MULTIPLEXED = "application/vnd.docker.multiplexed-stream"
RAW = "application/vnd.docker.raw-stream"


def _size_arg(request: Request, name: str) -> int:
    value = request.arg(name) or "0"
    try:
        n = int(value)
    except ValueError:
        n = -1
    if not 0 <= n < 2**32:
        kind = "height" if name == "h" else "width"
        raise InvalidArgument(f"invalid resize {kind} {value!r}")
    return n


def routes(daemon: Daemon) -> list[RouteSpec]:
    execs = ExecService(daemon.containers)

    async def create(request: Request) -> Response:
        body = await request.json()
        if body is None:
            raise InvalidArgument("No exec command specified")
        if not isinstance(body, dict):
            raise InvalidArgument("invalid JSON body: an object is needed")
        if parse_api_version(request.api_version) < (1, 42):
            body.pop("ConsoleSize", None)
        s = execs.create(request.params["id"], body)
        return json_response({"Id": s.id}, 201)

    async def start(request: Request) -> Response | Hijack:
        body = await request.json() or {}
        if not isinstance(body, dict):
            raise InvalidArgument("invalid JSON body: an object is needed")
        s = execs.get(request.params["id"])
        tty = bool(body.get("Tty"))
        size = None
        if tty and parse_api_version(request.api_version) >= (1, 42):
            size = console_size_arg(body.get("ConsoleSize"))
        execs.begin(s)
        if body.get("Detach"):
            await execs.start_detached(s, size)
            return Response(200, b"", content_type="text/plain")

        async def run(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await execs.run_attached(s, (reader, writer), framed=not tty, console_size=size)

        multiplexed = not tty and parse_api_version(request.api_version) >= (1, 42)
        return Hijack(run, MULTIPLEXED if multiplexed else RAW)

    async def resize(request: Request) -> Response:
        s = execs.get(request.params["id"])
        h, w = _size_arg(request, "h"), _size_arg(request, "w")
        await execs.resize(s, h, w)
        return Response(200, b"", content_type="text/plain")

    async def inspect(request: Request) -> Response:
        return json_response(execs.get(request.params["id"]).inspect())

    return [
        ("POST", "/containers/{id}/exec", create),
        ("POST", "/exec/{id}/start", start),
        ("POST", "/exec/{id}/resize", resize),
        ("GET", "/exec/{id}/json", inspect),
    ]
