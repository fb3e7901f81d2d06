"""Container resource routes: ``GET /containers/{id}/top``, ``GET
/containers/{id}/stats`` (one answer or a stream) and ``POST
/containers/{id}/update``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from skiff.daemon.http import Request, Response, StreamResponse, json_response
from skiff.engine import stats

if TYPE_CHECKING:
    from skiff.daemon.app import RouteSpec
    from skiff.daemon.state import Daemon


def routes(daemon: Daemon) -> list[RouteSpec]:
    svc = daemon.containers

    async def top(request: Request) -> Response:
        c = svc.get(request.params["id"])
        return json_response(await stats.top(svc, c, request.arg("ps_args") or ""))

    async def stats_(request: Request) -> StreamResponse:
        c = svc.get(request.params["id"])
        stream = request.flag("stream", True)
        one_shot = request.flag("one-shot")
        return StreamResponse(stats.stats_stream(svc, c, stream=stream, one_shot=one_shot))

    async def update(request: Request) -> Response:
        c = svc.get(request.params["id"])
        warnings = await stats.update(svc, c, await request.json())
        return json_response({"Warnings": warnings})

    return [
        ("GET", "/containers/{id}/top", top),
        ("GET", "/containers/{id}/stats", stats_),
        ("POST", "/containers/{id}/update", update),
    ]
