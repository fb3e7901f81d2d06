"""Files in and out of containers: ``GET``/``HEAD``/``PUT /containers/{id}/archive``
(``docker cp``), ``GET /containers/{id}/export`` and ``GET /containers/{id}/changes``
(``docker diff``).

Where files are read and written — a container's *view*:

- a running (or paused) container: its overlay, mounted at ``rootfs/`` while it runs
  (or, when that mount is not in the daemon's mount namespace, the container's own
  view, ``/proc/<pid>/root``, whose mounts are real);
- any other: under the container's lock (so it cannot start meanwhile — dockerd
  holds its container lock the same way), a read-only overlay of its upper dir over
  its image layers, mounted for the request at ``<exec root>/cpview/<random>`` (reads),
  or its own read-write overlay at ``rootfs/`` (writes); unmounted when done. Views
  left mounted by a daemon killed meanwhile are unmounted at the next use.

In both, paths resolve inside the container's root with its bind mounts followed
(:mod:`skiff.engine.inroot`): volumes, binds and its hostname/hosts/resolv.conf, from
the bundle of its last start (or, never started, from its HostConfig). Like dockerd,
a container path is taken from ``/`` whether or not it starts with one.

Archives are streamed both ways through a pipe to a thread of their own: a tar is
never held whole in memory, a slow client slows the walk, and a client that goes
away ends it. ``GET`` answers gzip when the client accepts it, as dockerd does.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import gzip
import io
import json
import logging
import os
import secrets
import stat
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, TypeVar

from skiff import _native
from skiff.engine.container import DEAD, PAUSED, REMOVING, RUNNING, Container
from skiff.engine.fdio import wait_fd, write_all
from skiff.engine.inroot import Mount, Root, lexical_join
from skiff.engine.tarout import TarWriter, go_base, path_stat
from skiff.engine.untar import ExtractOptions, Extractor
from skiff.errors import Conflict, InvalidArgument, NotFound, SkiffError

if TYPE_CHECKING:
    from skiff.engine.containers import ContainerService

log = logging.getLogger("skiff.engine.archive")

CHUNK = 256 * 1024
PIPE_SIZE = 1024 * 1024
VIEW_DIR = "cpview"
T = TypeVar("T")


def container_path(path: str) -> str:
    """The absolute form dockerd gives a request's path: joined to ``/`` and cleaned,
    keeping a trailing ``/`` or ``/.`` (archive.PreserveTrailingDotOrSeparator)."""
    clean = lexical_join("/", path)
    if go_base(path) == "." and go_base(clean) != ".":
        clean = clean.rstrip("/") + "/."
    if path.endswith("/") and not clean.endswith("/"):
        clean += "/"
    return clean


class ArchiveService:
    def __init__(self, containers: ContainerService, exec_root: Path) -> None:
        self.containers = containers
        self.views = exec_root / VIEW_DIR
        self._swept = False

    # ------------------------------------------------------------------ changes

    async def changes(self, ref: str) -> list[dict[str, Any]] | None:
        """``docker diff``: the container's upper dir against its image."""
        c = self.containers.get(ref)
        found = await asyncio.to_thread(self._changes, c)
        # dockerd answers null for none.
        return [{"Path": p, "Kind": k} for p, k in found] or None

    def _changes(self, c: Container) -> list[tuple[str, int]]:
        try:
            found = _native.changes(c.lowers, c.upper, overlay=True)
        except FileNotFoundError:
            raise NotFound(f"No such container: {c.id}") from None
        # The runtime's mount points live in the container's init layer, not here.
        return found

    # ------------------------------------------------------------------ stat

    async def stat(self, ref: str, path: str) -> dict[str, Any]:
        """``HEAD .../archive``: what is at ``path``, as dockerd's stat header has it."""
        c = self.containers.get(ref)
        _check_path(path)
        async with self._view(c, write=False) as root:
            return await asyncio.to_thread(_stat_path, root, path, path, ref)

    # ------------------------------------------------------------------ get

    async def get(
        self, ref: str, path: str, *, compress: bool = False
    ) -> tuple[dict[str, Any], AsyncIterator[bytes]]:
        """``GET .../archive``: the stat header and the tar stream of ``path``."""
        c = self.containers.get(ref)
        _check_path(path)
        abs_path = container_path(path)
        stack = contextlib.AsyncExitStack()
        try:
            root = await stack.enter_async_context(self._view(c, write=False))
            entry = await asyncio.to_thread(_stat_path, root, abs_path, path, ref)
        except BaseException:
            await stack.aclose()
            raise

        def produce(out: IO[bytes]) -> None:
            node = root.lookup(abs_path)
            try:
                writer = TarWriter(out, root)
                # A directory's entries are named from its base name ("/" gives "/...").
                writer.add_tree(node.fd, node.path, go_base(abs_path))
                writer.close()
            finally:
                node.close()

        self._publish(c, "archive-path")
        return entry, ThreadStream(produce, stack, compress=compress)

    # ------------------------------------------------------------------ export

    async def export(self, ref: str) -> AsyncIterator[bytes]:
        """``GET .../export``: the container's whole root filesystem, without its
        mounts, as a tar stream."""
        c = self.containers.get(ref)
        if c.state.status == DEAD:
            raise Conflict(f"You cannot export container {c.id} which is Dead")
        if c.state.status == REMOVING:
            raise Conflict(f"You cannot export container {c.id} which is being removed")
        stack = contextlib.AsyncExitStack()
        try:
            root = await stack.enter_async_context(self._view(c, write=False, mounts=False))
        except BaseException:
            await stack.aclose()
            raise

        def produce(out: IO[bytes]) -> None:
            writer = TarWriter(out, root)
            writer.add_tree(root.fd, "/", "", include_top=False)
            writer.close()

        self._publish(c, "export")
        return ThreadStream(produce, stack)

    # ------------------------------------------------------------------ put

    async def put(
        self,
        ref: str,
        path: str,
        body: AsyncIterator[bytes],
        *,
        allow_overwrite_dir_with_file: bool = True,
        copy_uid_gid: bool = False,
    ) -> None:
        """``PUT .../archive``: extracts the tar ``body`` into the directory ``path``."""
        c = self.containers.get(ref)
        _check_path(path)
        async with self._view(c, write=True) as root:
            dest = await asyncio.to_thread(_extract_dest, root, path, ref)
            try:
                options = ExtractOptions(allow_overwrite_dir_with_file)
                user = str(c.config.get("User") or "")
                if copy_uid_gid and user:
                    options.owner = await asyncio.to_thread(_container_user, root, user)
                extractor = Extractor(root, dest.stack, options)
                await feed_thread(body, extractor.run)
            finally:
                dest.close()
        self._publish(c, "extract-to-dir")

    # ------------------------------------------------------------------ views

    def _up(self, c: Container) -> bool:
        return c.state.status in (RUNNING, PAUSED) and self.containers.is_running(c)

    @contextlib.asynccontextmanager
    async def _view(self, c: Container, *, write: bool, mounts: bool = True) -> AsyncIterator[Root]:
        """The container's root (see the module's docstring)."""
        root = await asyncio.to_thread(self._open_running, c, mounts) if self._up(c) else None
        if root is not None:
            try:
                yield root
            finally:
                root.close()
            return
        try:
            live = self.containers.live(c)
        except KeyError:
            raise NotFound(f"No such container: {c.id}") from None
        async with live.lock:
            if live.removed:
                raise NotFound(f"No such container: {c.id}")
            await self.containers.settle(c)
            target: Path | None = None
            # Started before we had the lock; or created with a standby (its root
            # already mounted for its waiting init: the same view, not another).
            if self._up(c) or self.containers.holds_standby(c):
                root = await asyncio.to_thread(self._open_running, c, mounts)
                if root is None:
                    raise Conflict(f"cannot reach the filesystem of container {c.id}")
            else:
                target = await asyncio.to_thread(self._mount, c, write)
            try:
                if root is None:
                    assert target is not None
                    root = await asyncio.to_thread(self._open_root, c, target, mounts)
                try:
                    yield root
                finally:
                    root.close()
                    if write and self.containers.holds_standby(c):
                        # Its user is resolved again from the root at the start.
                        live.standby_stale = True
            finally:
                if target is not None:
                    await asyncio.to_thread(self._unmount, target)

    def _open_running(self, c: Container, mounts: bool) -> Root | None:
        """A running container's root: its overlay as mounted for it, or (when that
        mount is not in the daemon's namespace) its own view through /proc; None when
        neither can be had (it is stopping)."""
        try:
            fd = os.open(c.rootfs, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError:
            fd = -1
        if fd >= 0:
            if os.fstat(fd).st_dev != os.stat(c.root).st_dev:
                return self._root(c, fd, mounts)
            os.close(fd)
        pid = c.state.pid
        if not pid:
            return None
        try:
            fd = os.open(f"/proc/{pid}/root", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError:
            return None
        if not self._up(c) or c.state.pid != pid:
            os.close(fd)
            return None
        return self._root(c, fd, mounts, opaque=True)

    def _open_root(self, c: Container, top: Path, mounts: bool) -> Root:
        return self._root(c, os.open(top, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC), mounts)

    def _root(self, c: Container, fd: int, mounts: bool, *, opaque: bool = False) -> Root:
        """``fd`` (taken over) as the container's root. Without ``mounts`` (export)
        no mount is followed: in a view with real mounts, none is listed either."""
        try:
            table = self._mounts(c) if mounts or opaque else []
            if not mounts:
                table = [Mount(m.destination, None, m.writable) for m in table]
            readonly = bool(c.host_config.get("ReadonlyRootfs"))
            return Root(fd, table, readonly=readonly, opaque=opaque)
        except BaseException:
            os.close(fd)
            raise

    def _mount(self, c: Container, write: bool) -> Path:
        if write:
            if c.rootfs_mounted():  # left by a daemon killed meanwhile
                self.containers.mounter.unmount(c.rootfs, detach=True)
            self.containers.mounter.mount(
                [Path(p) for p in c.lowers], c.rootfs, upper=c.upper, work=c.work
            )
            return c.rootfs
        self._sweep()
        target = self.views / f"{c.id[:16]}-{secrets.token_hex(4)}"
        target.mkdir(parents=True)
        try:
            lowers = [self.containers.mounter.short_link(Path(p)) for p in c.lowers]
            if lowers:
                _native.mount_overlay([c.upper, *lowers], target)
            else:
                _native.bind_mount(c.upper, target, readonly=True)
        except BaseException:
            target.rmdir()
            raise
        return target

    def _unmount(self, target: Path) -> None:
        try:
            self.containers.mounter.unmount(target)
        except OSError as err:
            log.warning("unmounting %s: %s; detaching it", target, err)
            self.containers.mounter.unmount(target, detach=True)
        if target.parent == self.views:
            with contextlib.suppress(OSError):
                target.rmdir()

    def _sweep(self) -> None:
        """Unmounts views a killed daemon left behind (once per daemon)."""
        if self._swept:
            return
        self._swept = True
        self.views.mkdir(parents=True, exist_ok=True, mode=0o700)
        for entry in self.views.iterdir():
            with contextlib.suppress(OSError):
                if os.path.ismount(entry):
                    self.containers.mounter.unmount(entry, detach=True)
                entry.rmdir()

    def _mounts(self, c: Container) -> list[Mount]:
        """The container's mounts: from its bundle when it was started, else what its
        HostConfig asks for (without creating anything)."""
        try:
            spec = json.loads((c.root / "config.json").read_text())
        except (OSError, ValueError):
            spec = None
        if isinstance(spec, dict) and isinstance(spec.get("mounts"), list):
            out = []
            for m in spec["mounts"]:
                if not isinstance(m, dict) or not isinstance(m.get("destination"), str):
                    continue
                opts = m.get("options") or []
                bind = m.get("type") == "bind" or "bind" in opts or "rbind" in opts
                source = str(m.get("source") or "") if bind else None
                out.append(Mount(m["destination"], source or None, "ro" not in opts))
            return out
        return self._configured_mounts(c)

    def _configured_mounts(self, c: Container) -> list[Mount]:
        hc = c.host_config
        volumes = self.containers.volumes_root
        out: list[Mount] = []
        taken = set()
        for bind in hc.get("Binds") or []:
            parts = str(bind).split(":")
            if len(parts) < 2:
                continue
            src, dst = parts[0], parts[1]
            rw = not (len(parts) > 2 and "ro" in parts[2].split(","))
            if not src.startswith("/"):
                src = str(volumes / src / "_data")
            out.append(Mount(dst, src, rw))
            taken.add(dst)
        for m in hc.get("Mounts") or []:
            kind = m.get("Type") or "volume"
            dst = m.get("Target") or m.get("Destination") or ""
            rw = not m.get("ReadOnly")
            if kind == "bind":
                out.append(Mount(dst, m.get("Source") or None, rw))
            elif kind == "volume" and m.get("Source"):
                out.append(Mount(dst, str(volumes / m["Source"] / "_data"), rw))
            else:
                out.append(Mount(dst, None, rw))
            taken.add(dst)
        for dst in hc.get("Tmpfs") or {}:
            out.append(Mount(dst, None))
            taken.add(dst)
        rw = not hc.get("ReadonlyRootfs")
        for fname, dst in (
            ("hostname", "/etc/hostname"),
            ("hosts", "/etc/hosts"),
            ("resolv.conf", "/etc/resolv.conf"),
        ):
            if dst not in taken:
                out.insert(0, Mount(dst, str(c.root / fname), rw))
        return out

    def _publish(self, c: Container, action: str) -> None:
        attrs = {"image": c.image_name, "name": c.name}
        attrs.update({k: str(v) for k, v in (c.config.get("Labels") or {}).items()})
        self.containers.events.publish("container", action, c.id, attrs)


# ----------------------------------------------------------------------- helpers


def _check_path(path: str) -> None:
    if not path:
        raise InvalidArgument("bad parameter: path cannot be empty")
    if "\0" in path:
        raise InvalidArgument("bad parameter: path contains a NUL byte")


def _not_found(path: str, ref: str) -> NotFound:
    return NotFound(f"Could not find the file {path} in container {ref}")


def _stat_path(root: Root, path: str, asked: str, ref: str) -> dict[str, Any]:
    try:
        node = root.lookup(path)
        try:
            st = node.stat()
        finally:
            node.close()
        target = root.canonical(path) if stat.S_ISLNK(st.st_mode) else ""
    except FileNotFoundError:
        raise _not_found(asked, ref) from None
    except OSError as err:
        raise SkiffError(f"lstat {path}: {(err.strerror or str(err)).lower()}") from None
    return path_stat(go_base(path), st, target)


def _extract_dest(root: Root, path: str, ref: str) -> Any:
    """The walk to the directory a PUT extracts into (its last symlink followed)."""
    abs_path = container_path(path)
    try:
        walk = root.walk(abs_path, follow=True)
    except FileNotFoundError:
        raise _not_found(path, ref) from None
    except OSError as err:
        raise SkiffError(f"{path}: {(err.strerror or str(err)).lower()}") from None
    try:
        if not stat.S_ISDIR(walk.node.stat().st_mode):
            raise InvalidArgument("extraction point is not a directory")
        where = walk.node.path
        if not root.writable(where):
            mounted = any(where == d or where.startswith(d.rstrip("/") + "/") for d in root.mounts)
            raise InvalidArgument(
                "mounted volume is marked read-only"
                if mounted
                else "container rootfs is marked read-only"
            )
    except BaseException:
        walk.close()
        raise
    return walk


def _container_user(root: Root, user: str) -> tuple[int, int]:
    """uid and gid of ``user[:group]`` by the container's own passwd and group files
    (docker cp -a)."""
    name, _, group = user.partition(":")
    uid = gid = 0
    if name:
        entry = _db_entry(root, "/etc/passwd", name, id_field=2)
        if entry is not None:
            uid, gid = int(entry[2]), int(entry[3])
        elif name.isdigit():
            uid = int(name)
        else:
            raise InvalidArgument(f'failed to look up user "{name}" in container')
    if group:
        gentry = _db_entry(root, "/etc/group", group, id_field=2)
        if gentry is not None:
            gid = int(gentry[2])
        elif group.isdigit():
            gid = int(group)
        else:
            raise InvalidArgument(f'failed to look up group "{group}" in container')
    return uid, gid


def _db_entry(root: Root, path: str, key: str, id_field: int) -> list[str] | None:
    try:
        node = root.lookup(path, follow=True)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(node.stat().st_mode):
            return None
        fd = os.open(f"/proc/self/fd/{node.fd}", os.O_RDONLY | os.O_CLOEXEC)
        with os.fdopen(fd, "rb") as f:
            text = f.read(4 * 1024 * 1024).decode("utf-8", "replace")
    finally:
        node.close()
    for line in text.splitlines():
        fields = line.split(":")
        if len(fields) <= id_field + (1 if path.endswith("passwd") else 0):
            continue
        if fields[0] == key or (key.isdigit() and fields[id_field] == key):
            if path.endswith("passwd") and not (fields[2].isdigit() and fields[3].isdigit()):
                continue
            if not fields[id_field].isdigit():
                continue
            return fields
    return None


# ----------------------------------------------------------------------- streaming


def _pipe() -> tuple[int, int]:
    """A pipe with room for a few chunks (fewer wake-ups than the default 64 KiB)."""
    rfd, wfd = os.pipe2(os.O_CLOEXEC)
    with contextlib.suppress(OSError):
        fcntl.fcntl(wfd, fcntl.F_SETPIPE_SZ, PIPE_SIZE)
    return rfd, wfd


def run_in_thread(fn: Callable[[], T]) -> asyncio.Future[T]:
    """Runs ``fn`` in a thread of its own (long transfers must not hold the default
    executor's few workers)."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(result: T | None, error: BaseException | None) -> None:
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)  # type: ignore[arg-type]

    def main() -> None:
        try:
            result = fn()
        except BaseException as err:
            loop.call_soon_threadsafe(settle, None, err)
        else:
            loop.call_soon_threadsafe(settle, result, None)

    threading.Thread(target=main, name="skiff-archive", daemon=True).start()
    return future


#: What an archive stream holds back until its view is closed: one tar record
#: (tarfile's RECORDSIZE), which holds the end-of-archive blocks and their padding.
HOLD_BACK = 20 * 512


class ThreadStream:
    """An async iterator of the bytes ``produce(out)`` writes in a thread of its own,
    through a pipe; ``cleanup`` (the view) is closed once the thread has ended, when
    the stream is read to its end or closed early (the client went away). The last
    bytes (one tar record) are handed out only after that: a client that stops
    reading at the tar's end (the docker CLI does) finds the view already unmounted."""

    def __init__(
        self,
        produce: Callable[[IO[bytes]], None],
        cleanup: contextlib.AsyncExitStack,
        *,
        compress: bool = False,
    ) -> None:
        self._produce = produce
        self._cleanup = cleanup
        self._compress = compress
        self._rfd = -1
        self._thread: asyncio.Future[None] | None = None
        self._closed = False
        self._held = bytearray()  # read, not yet handed out

    def __aiter__(self) -> ThreadStream:
        return self

    def _start(self) -> None:
        rfd, wfd = _pipe()
        os.set_blocking(rfd, False)
        self._rfd = rfd

        def main() -> None:
            try:
                with os.fdopen(wfd, "wb", buffering=CHUNK) as raw:
                    if self._compress:
                        with gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=1, mtime=0) as gz:
                            self._produce(gz)  # type: ignore[arg-type]
                    else:
                        self._produce(raw)
            except BrokenPipeError:
                pass  # the reader went away

        self._thread = run_in_thread(main)

    async def __anext__(self) -> bytes:
        if self._closed:
            raise StopAsyncIteration
        if self._thread is None:
            self._start()
        while data := await self._read():
            # The last tar record (the end-of-archive blocks and their padding may
            # come in more than one write) stays back until the end.
            self._held += data
            if len(self._held) > HOLD_BACK:
                with memoryview(self._held) as view:
                    out = bytes(view[:-HOLD_BACK])  # (one copy: a slice copies too)
                del self._held[:-HOLD_BACK]
                return out
        # The end of the stream: it is whole only if the writer finished.
        assert self._thread is not None
        try:
            await self._thread
        except Exception as err:
            log.warning("archive stream failed: %s", err)
            await self.aclose()
            # Ends the HTTP answer without its last chunk: the client sees a broken
            # stream rather than a short tar that looks whole.
            raise ConnectionAbortedError(str(err)) from err
        await self.aclose()
        last, self._held = bytes(self._held), bytearray()
        if last:
            return last
        raise StopAsyncIteration

    async def _read(self) -> bytes:
        """The next bytes from the pipe; empty at its end."""
        while True:
            try:
                return os.read(self._rfd, CHUNK)
            except BlockingIOError:
                await wait_fd(self._rfd, write=False)

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._rfd >= 0:
            os.close(self._rfd)
            self._rfd = -1
        if self._thread is not None:
            with contextlib.suppress(Exception):
                await asyncio.shield(self._thread)
        await self._cleanup.aclose()


async def feed_thread(chunks: AsyncIterator[bytes], consume: Callable[[io.FileIO], T]) -> T:
    """Runs ``consume(stream)`` in a thread of its own on the bytes of ``chunks``,
    passed through a pipe; returns its result (or raises its error). When ``consume``
    stops early, the rest of ``chunks`` is left unread."""
    rfd, wfd = _pipe()

    def main() -> T:
        with io.FileIO(rfd, "rb") as stream:
            return consume(stream)

    try:
        thread = run_in_thread(main)
    except BaseException:
        os.close(rfd)
        os.close(wfd)
        raise
    os.set_blocking(wfd, False)
    failure: BaseException | None = None
    try:
        async for chunk in chunks:
            await write_all(wfd, chunk)
    except BrokenPipeError:
        pass  # the consumer stopped: its result says why
    except BaseException as err:
        failure = err
    finally:
        os.close(wfd)
    try:
        result = await asyncio.shield(thread)
    except BaseException:
        if failure is not None:
            raise failure from None
        raise
    if failure is not None:
        raise failure
    return result
