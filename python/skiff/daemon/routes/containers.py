"""Container routes: ``/containers/...`` of the Engine API (create, start, stop, kill,
restart, pause, wait, attach, resize, logs, inspect, list, rename, remove, prune)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from skiff import jsontext
from skiff.daemon.http import Hijack, Request, Response, StreamResponse, json_response
from skiff.engine import attach as attaching
from skiff.engine.containers import AttachWaiter
from skiff.engine.filters import label_matches, parse_filters
from skiff.engine.logs import LogOptions, parse_time_arg, read_logs
from skiff.errors import Conflict, InvalidArgument, NotModified
from skiff.version import parse_api_version

if TYPE_CHECKING:
    from skiff.daemon.app import RouteSpec
    from skiff.daemon.state import Daemon

MULTIPLEXED = "application/vnd.docker.multiplexed-stream"
RAW = "application/vnd.docker.raw-stream"


def stream_type(request: Request, tty: bool) -> str:
    if tty or parse_api_version(request.api_version) < (1, 42):
        return RAW
    return MULTIPLEXED


def int_arg(request: Request, name: str, default: int | None = None) -> int | None:
    value = request.arg(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise InvalidArgument(f"invalid value for {name}: {value!r}") from None


def routes(daemon: Daemon) -> list[RouteSpec]:
    svc = daemon.containers

    async def create(request: Request) -> Response:
        body = await request.json()
        if body is None:
            raise InvalidArgument("config cannot be empty in order to create a container")
        c = await svc.create(body, request.arg("name"))
        return json_response({"Id": c.id, "Warnings": []}, 201)

    async def list_(request: Request) -> Response:
        limit = int_arg(request, "limit", -1)
        return json_response(
            svc.list(
                all=request.flag("all"),
                limit=limit if limit is not None else -1,
                size=request.flag("size"),
                filters=parse_filters(request.arg("filters")),
            )
        )

    async def inspect(request: Request) -> Response:
        c = svc.get(request.params["id"])
        out = c.inspect()
        if request.flag("size"):
            entry = svc.list(all=True, size=True, filters={"id": [c.id]})
            if entry:
                out["SizeRw"] = entry[0]["SizeRw"]
                out["SizeRootFs"] = entry[0]["SizeRootFs"]
        return json_response(out)

    async def start(request: Request) -> Response:
        c = svc.get(request.params["id"])
        try:
            await svc.start(c)
        except NotModified:
            return Response(304)
        return Response(204)

    async def stop(request: Request) -> Response:
        c = svc.get(request.params["id"])
        try:
            await svc.stop(c, int_arg(request, "t"), request.arg("signal"))
        except NotModified:
            return Response(304)
        return Response(204)

    async def restart(request: Request) -> Response:
        c = svc.get(request.params["id"])
        await svc.restart(c, int_arg(request, "t"), request.arg("signal"))
        return Response(204)

    async def kill(request: Request) -> Response:
        c = svc.get(request.params["id"])
        await svc.kill(c, request.arg("signal"))
        return Response(204)

    async def pause(request: Request) -> Response:
        await svc.pause(svc.get(request.params["id"]))
        return Response(204)

    async def unpause(request: Request) -> Response:
        await svc.unpause(svc.get(request.params["id"]))
        return Response(204)

    async def wait(request: Request) -> Response | StreamResponse:
        c = svc.get(request.params["id"])
        condition = request.arg("condition") or "not-running"
        if condition not in ("not-running", "next-exit", "removed"):
            raise InvalidArgument(f"invalid condition: {condition!r}")
        # Registered now, so that a start right after this request is seen.
        waiting = asyncio.ensure_future(svc.wait(c, condition))
        await asyncio.sleep(0)
        if waiting.done():
            # Met already (the container is not running): the answer in one write,
            # where a stream takes three (head, chunk, end) and the client as many
            # wake-ups.
            code, _ = waiting.result()
            return json_response({"StatusCode": code, "Error": None})

        async def body() -> AsyncIterator[bytes]:
            try:
                code, _ = await waiting
            finally:
                waiting.cancel()
            # dockerd leaves Error empty for a start failure too: the start's own
            # answer reports it.
            out: dict[str, object] = {"StatusCode": code, "Error": None}
            yield jsontext.dumps(out) + b"\n"

        return StreamResponse(body(), single=True)

    async def remove(request: Request) -> Response:
        c = svc.get(request.params["id"])
        if request.flag("link"):
            raise Conflict("links are not supported")
        await svc.remove(c, force=request.flag("force"), volumes=request.flag("v"))
        return Response(204)

    async def rename(request: Request) -> Response:
        c = svc.get(request.params["id"])
        new = request.arg("name")
        if not new:
            raise InvalidArgument("Neither old nor new names may be empty")
        svc.rename(c, new)
        return Response(204)

    async def resize(request: Request) -> Response:
        c = svc.get(request.params["id"])
        h = int_arg(request, "h", 0) or 0
        w = int_arg(request, "w", 0) or 0
        if c.state.status not in ("running", "paused"):
            raise Conflict(f"Container {c.id} is not running")
        await attaching.resize(svc.monitor_files(c), h, w)
        return Response(200, b"", content_type="text/plain")

    async def attach(request: Request) -> Hijack:
        c = svc.get(request.params["id"])
        if not request.flag("stream") and not request.flag("logs"):
            raise InvalidArgument("Bad parameters: you must choose at least one stream")
        want_stdin = request.flag("stdin") and bool(c.config.get("OpenStdin"))
        want_out, want_err = request.flag("stdout"), request.flag("stderr")
        live = svc.live(c)
        waiter: AttachWaiter | None = None
        if c.state.status not in ("running", "paused"):
            loop = asyncio.get_running_loop()
            waiter = AttachWaiter(loop.create_future(), loop.create_future())
            live.attach_waiters.append(waiter)

        async def run(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                if waiter is not None:
                    files = await waiter.monitor
                else:
                    files = svc.monitor_files(c)
                monitor = await attaching.connect(
                    files,
                    stdin=want_stdin,
                    stdout=want_out,
                    stderr=want_err,
                    stdin_once=bool(c.config.get("StdinOnce")),
                )
            except Exception:
                return
            finally:
                if waiter is not None and not waiter.connected.done():
                    waiter.connected.set_result(None)
                    with contextlib.suppress(ValueError):
                        live.attach_waiters.remove(waiter)
            await attaching.pump(monitor, (reader, writer), stdin=want_stdin)

        return Hijack(run, stream_type(request, c.tty))

    async def logs(request: Request) -> StreamResponse:
        c = svc.get(request.params["id"])
        opts = LogOptions(
            stdout=request.flag("stdout"),
            stderr=request.flag("stderr"),
            since=parse_time_arg(request.arg("since")),
            until=parse_time_arg(request.arg("until")),
            tail=_tail(request.arg("tail")),
            timestamps=request.flag("timestamps"),
            follow=request.flag("follow"),
        )
        if not opts.stdout and not opts.stderr:
            raise InvalidArgument("Bad parameters: you must choose at least one stream")
        log_type = (c.host_config.get("LogConfig") or {}).get("Type") or "json-file"
        if log_type == "none":
            raise InvalidArgument("configured logging driver does not support reading")

        def running() -> bool:
            return svc.is_running(c)

        return StreamResponse(
            read_logs(c.log_path, opts, c.tty, running), content_type=stream_type(request, c.tty)
        )

    async def prune(request: Request) -> Response:
        filters = parse_filters(request.arg("filters"))
        deleted = []
        reclaimed = 0
        for c in svc.all():
            if c.state.status in ("running", "paused", "restarting"):
                continue
            if "label" in filters and not label_matches(
                c.config.get("Labels") or {}, filters["label"]
            ):
                continue
            size = svc.list(all=True, size=True, filters={"id": [c.id]})
            await svc.remove(c)
            deleted.append(c.id)
            reclaimed += size[0]["SizeRw"] if size else 0
        return json_response({"ContainersDeleted": deleted or None, "SpaceReclaimed": reclaimed})

    return [
        ("POST", "/containers/create", create),
        ("GET", "/containers/json", list_),
        ("POST", "/containers/prune", prune),
        ("GET", "/containers/{id}/json", inspect),
        ("POST", "/containers/{id}/start", start),
        ("POST", "/containers/{id}/stop", stop),
        ("POST", "/containers/{id}/restart", restart),
        ("POST", "/containers/{id}/kill", kill),
        ("POST", "/containers/{id}/pause", pause),
        ("POST", "/containers/{id}/unpause", unpause),
        ("POST", "/containers/{id}/wait", wait),
        ("DELETE", "/containers/{id}", remove),
        ("POST", "/containers/{id}/rename", rename),
        ("POST", "/containers/{id}/resize", resize),
        ("POST", "/containers/{id}/attach", attach),
        ("GET", "/containers/{id}/logs", logs),
    ]


def _tail(text: str | None) -> int:
    if text is None or text == "" or text == "all":
        return -1
    try:
        n = int(text)
    except ValueError:
        raise InvalidArgument(f"invalid value for tail: {text!r}") from None
    return n if n >= 0 else -1
