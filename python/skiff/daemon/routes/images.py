"""Image routes: ``/images/...``, ``/commit`` and ``/auth`` of the Engine API (pull and
import, push, list, inspect, history, tag, delete, save, load, prune, commit, login).

Long operations (pull, push, save, load, import, commit) run in threads of their own,
not in the loop's executor, so that a slow registry cannot starve the quick calls.
A pull or push answers with Docker's JSON progress stream: the thread's messages cross
to the event loop through a queue and are sent as they come. As dockerd does, an
error before the first real message is the answer's status (404 for a missing image,
say); after it, the error is the last message of the stream. A client that goes away
stops the operation at its next message.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from skiff import jsontext
from skiff.daemon.http import Request, Response, StreamResponse, json_response
from skiff.engine.filters import parse_filters
from skiff.engine.images import ImageEngine, decode_registry_auth, error_message
from skiff.errors import InvalidArgument, NotImplementedYet, SkiffError

if TYPE_CHECKING:
    from skiff.daemon.app import RouteSpec
    from skiff.daemon.state import Daemon

log = logging.getLogger("skiff.daemon.images")

T = TypeVar("T")
Message = dict[str, Any]

#: Bytes per chunk of a saved archive, and chunks in flight to a slow client.
SAVE_CHUNK = 256 * 1024
SAVE_WINDOW = 16


class ClientGone(Exception):
    """The client of a streamed operation went away: the operation stops."""


_END = object()


class Job:
    """A blocking function run in a thread of its own; what it sends (progress
    messages, data chunks) and its end reach the event loop through a queue."""

    def __init__(self, loop: asyncio.AbstractEventLoop, window: int = 0) -> None:
        self.loop = loop
        self.queue: asyncio.Queue[object] = asyncio.Queue()
        self.gone = threading.Event()
        self.error: BaseException | None = None
        self.result: Any = None
        # Data chunks in flight (0: no limit): a slow client slows the producer down.
        self._window = threading.Semaphore(window) if window else None

    def start(self, fn: Callable[[Job], Any], name: str) -> None:
        threading.Thread(target=self._run, args=(fn,), name=name, daemon=True).start()

    def _run(self, fn: Callable[[Job], Any]) -> None:
        try:
            self.result = fn(self)
        except BaseException as err:
            self.error = err
            if not isinstance(err, (SkiffError, ClientGone)):
                log.error("image operation failed", exc_info=err)
        finally:
            self._put(_END)

    def _put(self, item: object) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: the daemon stops
            self.loop.call_soon_threadsafe(self.queue.put_nowait, item)

    def send(self, message: Message) -> None:
        """A progress message (any thread); raises ClientGone once the client left."""
        if self.gone.is_set():
            raise ClientGone()
        self._put(message)

    def send_data(self, data: bytes) -> None:
        if self._window is not None:
            while not self._window.acquire(timeout=0.2):
                if self.gone.is_set():
                    raise ClientGone()
        if self.gone.is_set():
            raise ClientGone()
        self._put(data)

    def consumed(self) -> None:
        if self._window is not None:
            self._window.release()

    async def wait(self) -> Any:
        """For jobs that send nothing: their result, or their error raised."""
        while await self.queue.get() is not _END:
            pass
        if self.error is not None:
            raise self.error
        return self.result


class _Chunks:
    """The body of a streamed answer; closing it (the client went away, or the end)
    tells the job, even when the body never started."""

    def __init__(self, gen: AsyncIterator[bytes], on_close: Callable[[], None]) -> None:
        self._gen = gen
        self._on_close = on_close

    def __aiter__(self) -> _Chunks:
        return self

    async def __anext__(self) -> bytes:
        return await self._gen.__anext__()

    async def aclose(self) -> None:
        try:
            aclose = getattr(self._gen, "aclose", None)
            if aclose is not None:
                await aclose()
        finally:
            self._on_close()


def _line(message: Message) -> bytes:
    return jsontext.dumps(message) + b"\n"


async def run(fn: Callable[[], T], name: str) -> T:
    """A blocking call in a thread of its own."""
    job = Job(asyncio.get_running_loop())
    job.start(lambda _job: fn(), name)
    try:
        result: T = await job.wait()
    except asyncio.CancelledError:
        job.gone.set()
        raise
    return result


async def progress_stream(
    fn: Callable[[Job], Any],
    name: str,
    *,
    hold: Callable[[Message], bool] | None = None,
) -> StreamResponse:
    """Runs ``fn(job)`` (which reports with ``job.send``) and answers with its
    messages. Messages ``hold`` accepts are kept back until another one comes: an
    error before that is the answer's status, not a message."""
    job = Job(asyncio.get_running_loop())
    job.start(fn, name)
    held: list[Message] = []
    ended = False
    try:
        while True:
            item = await job.queue.get()
            if item is _END:
                ended = True
                if job.error is not None:
                    raise job.error
                break
            assert isinstance(item, dict)
            held.append(item)
            if hold is None or not hold(item):
                break
    except BaseException:
        job.gone.set()
        raise

    async def body() -> AsyncIterator[bytes]:
        for message in held:
            yield _line(message)
        if not ended:
            while (item := await job.queue.get()) is not _END:
                assert isinstance(item, dict)
                yield _line(item)
        if job.error is not None and not isinstance(job.error, ClientGone):
            yield _line(error_message(job.error))

    return StreamResponse(_Chunks(body(), job.gone.set))


class _ChunkWriter:
    """A write-only file whose bytes go to a job's client in chunks."""

    def __init__(self, job: Job) -> None:
        self.job = job
        self.buf = bytearray()

    def write(self, data: bytes) -> int:
        self.buf += data
        if len(self.buf) >= SAVE_CHUNK:
            self.flush()
        return len(data)

    def flush(self) -> None:
        if self.buf:
            data, self.buf = bytes(self.buf), bytearray()
            self.job.send_data(data)


def routes(daemon: Daemon) -> list[RouteSpec]:
    eng = ImageEngine(daemon)

    async def body_to_file(request: Request, prefix: str) -> Path:
        """Streams the request body into a temporary file under the data root."""
        path = eng.temp_path(prefix)
        try:
            with open(path, "wb") as f:
                async for chunk in request.body.chunks():
                    f.write(chunk)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        return path

    # ------------------------------------------------------------------ create

    async def create(request: Request) -> Response | StreamResponse:
        if request.arg("fromImage"):
            return await pull(request)
        src = request.arg("fromSrc") or ""
        if src == "-":
            return await import_(request)
        if not src:
            raise InvalidArgument("fromImage or fromSrc is required")
        raise InvalidArgument(
            f"importing from a URL ({src}) is not supported: send the tar as the request"
            " body with fromSrc=-"
        )

    async def pull(request: Request) -> StreamResponse:
        ref, all_tags = eng.pull_refs(request.arg("fromImage") or "", request.arg("tag") or "")
        auth = decode_registry_auth(request.headers.get("x-registry-auth"))
        platform = request.arg("platform") or None

        def job(j: Job) -> None:
            eng.pull(ref, all_tags, auth, platform, j.send)

        def held(message: Message) -> bool:
            return str(message.get("status", "")).startswith("Pulling from")

        return await progress_stream(job, "pull", hold=held)

    async def import_(request: Request) -> Response:
        ref_text, config = eng.import_target(
            repo=request.arg("repo") or "",
            tag=request.arg("tag") or "",
            changes=request.query.get("changes", []),
        )
        message = request.arg("message") or ""
        path = await body_to_file(request, "import-")
        try:
            image_id = await run(lambda: eng.import_(path, ref_text, config, message), "import")
        finally:
            path.unlink(missing_ok=True)
        return Response(200, _line({"status": image_id}))

    # ------------------------------------------------------------------ push

    async def push(request: Request) -> StreamResponse:
        refs = await run(
            lambda: eng.push_refs(request.params["name"], request.arg("tag") or ""), "push"
        )
        auth = decode_registry_auth(request.headers.get("x-registry-auth"))

        def job(j: Job) -> None:
            eng.push(refs, auth, j.send)

        def held(message: Message) -> bool:
            return str(message.get("status", "")).startswith("The push refers to")

        return await progress_stream(job, "push", hold=held)

    # ------------------------------------------------------------------ reading

    async def list_(request: Request) -> Response:
        filters = parse_filters(request.arg("filters"))
        legacy = request.arg("filter")
        if legacy:
            filters.setdefault("reference", []).append(legacy)
        out = await asyncio.to_thread(
            eng.list_images,
            all_=request.flag("all"),
            filters=filters,
            shared_size=request.flag("shared-size"),
            api_version=request.api_version,
        )
        return json_response(out)

    async def inspect(request: Request) -> Response:
        out = await asyncio.to_thread(eng.inspect, request.params["name"], request.api_version)
        return json_response(out)

    async def history(request: Request) -> Response:
        return json_response(await asyncio.to_thread(eng.svc.history, request.params["name"]))

    async def search(request: Request) -> Response:
        raise NotImplementedYet("searching a registry is not supported by Skiff")

    # ------------------------------------------------------------------ changing

    async def tag(request: Request) -> Response:
        await asyncio.to_thread(
            eng.tag, request.params["name"], request.arg("repo") or "", request.arg("tag") or ""
        )
        return Response(201, b"", content_type="text/plain")

    async def remove(request: Request) -> Response:
        name = request.params["name"]
        if not name.strip():
            raise InvalidArgument("image name cannot be blank")
        # A container made ahead of need holds a lease on its image's layers: none
        # is kept or made meanwhile.
        standby = daemon.containers.standby
        await asyncio.to_thread(standby.hold)
        try:
            usage = eng.usage()
            force, prune = request.flag("force"), not request.flag("noprune")
            out = await run(lambda: eng.delete(name, force=force, prune=prune, usage=usage), "rmi")
        finally:
            standby.release()
        return json_response(out)

    async def prune(request: Request) -> Response:
        filters = parse_filters(request.arg("filters"))
        standby = daemon.containers.standby
        await asyncio.to_thread(standby.hold)
        try:
            usage = eng.usage()
            return json_response(await run(lambda: eng.prune(filters, usage), "image-prune"))
        finally:
            standby.release()

    # ------------------------------------------------------------------ save and load

    async def save(request: Request) -> StreamResponse:
        if "name" in request.params:
            wanted = [request.params["name"]]
        else:
            wanted = request.query.get("names", [])
        names = await run(lambda: eng.save_names(wanted), "save")
        job = Job(asyncio.get_running_loop(), window=SAVE_WINDOW)

        def work(j: Job) -> None:
            out = _ChunkWriter(j)
            eng.save(names, out)
            out.flush()

        job.start(work, "save")

        async def body() -> AsyncIterator[bytes]:
            while (item := await job.queue.get()) is not _END:
                assert isinstance(item, bytes)
                job.consumed()
                yield item
            # An error after the first bytes can only cut the archive short: the
            # client sees a truncated tar, as with dockerd.
            if job.error is not None and not isinstance(job.error, ClientGone):
                log.warning("save of %s failed: %s", names, job.error)

        return StreamResponse(_Chunks(body(), job.gone.set), content_type="application/x-tar")

    async def load(request: Request) -> Response:
        # ``quiet`` changes nothing: no per-layer progress is sent either way.
        path = await body_to_file(request, "load-")
        try:
            lines = await run(lambda: eng.load(path), "load")
        except SkiffError as err:
            # dockerd answers 200 and reports a failed load in the stream.
            return Response(200, _line(error_message(err)))
        finally:
            path.unlink(missing_ok=True)
        return Response(200, b"".join(_line({"stream": line + "\n"}) for line in lines))

    # ------------------------------------------------------------------ commit

    async def commit(request: Request) -> Response:
        name = request.arg("container") or ""
        if not name:
            raise InvalidArgument("container name is required")
        c = daemon.containers.get(name)
        body = await request.json()
        config, created_by = eng.commit_config(c, body, request.query.get("changes", []))
        paused_here = False
        if request.flag("pause", True) and c.state.status == "running":
            await daemon.containers.pause(c)
            paused_here = True
        try:
            image_id = await run(
                lambda: eng.commit(
                    c,
                    config,
                    repo=request.arg("repo") or "",
                    tag=request.arg("tag") or "",
                    comment=request.arg("comment") or "",
                    author=request.arg("author") or "",
                    created_by=created_by,
                ),
                "commit",
            )
        finally:
            if paused_here:
                with contextlib.suppress(SkiffError):
                    await daemon.containers.unpause(c)
        return json_response({"Id": image_id}, 201)

    # ------------------------------------------------------------------ auth

    async def auth(request: Request) -> Response:
        body = await request.json()
        if not isinstance(body, dict):
            raise InvalidArgument("the login body must be an AuthConfig object")
        await run(lambda: eng.login(body), "login")
        return json_response({"Status": "Login Succeeded", "IdentityToken": ""})

    # ``docker system prune`` also prunes networks and the build cache. Until modules
    # for those exist (they then answer instead), there is nothing of either to prune:
    # only the built-in networks, and no build cache.
    async def networks_prune(request: Request) -> Response:
        parse_filters(request.arg("filters"))
        return json_response({"NetworksDeleted": None})

    async def build_prune(request: Request) -> Response:
        parse_filters(request.arg("filters"))
        return json_response({"CachesDeleted": None, "SpaceReclaimed": 0})

    from skiff.daemon.app import ROUTE_MODULES

    stand_ins: list[RouteSpec] = []
    if "networks" not in ROUTE_MODULES:
        stand_ins.append(("POST", "/networks/prune", networks_prune))
    if "build" not in ROUTE_MODULES:
        stand_ins.append(("POST", "/build/prune", build_prune))

    return [
        *stand_ins,
        ("POST", "/images/create", create),
        ("GET", "/images/json", list_),
        ("GET", "/images/search", search),
        ("GET", "/images/get", save),
        ("POST", "/images/load", load),
        ("POST", "/images/prune", prune),
        ("GET", "/images/{name:.+}/json", inspect),
        ("GET", "/images/{name:.+}/history", history),
        ("GET", "/images/{name:.+}/get", save),
        ("POST", "/images/{name:.+}/push", push),
        ("POST", "/images/{name:.+}/tag", tag),
        ("DELETE", "/images/{name:.+}", remove),
        ("POST", "/commit", commit),
        ("POST", "/auth", auth),
    ]
