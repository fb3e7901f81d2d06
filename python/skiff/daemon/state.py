"""The running daemon: its configuration, directories, pid file and listeners.

Directories it owns (see ../../DESIGN.md, "On disk"): ``data_root`` (default
/var/lib/skiff, mode 0711) for persistent state, ``exec_root`` (default /run/skiff)
for runtime state; the API socket defaults to /run/skiff/skiff.sock, mode 0660, group
``skiff`` when that group exists. The exec root is made mode 0700 when nothing made
it before; with the socket in it (the default), the socket's directory is made
first, mode 0755, so that members of group ``skiff`` reach the socket. What the
daemon keeps in it (monitors' files, the runtime's state) is in directories of
mode 0700.
"""

from __future__ import annotations

import asyncio
import contextlib
import grp
import logging
import os
import socket
import ssl
from pathlib import Path
from typing import TYPE_CHECKING

from skiff.daemon.config import DaemonConfig
from skiff.daemon.http import HTTPServer
from skiff.engine.events import EventBus
from skiff.errors import Conflict, NotFound
from skiff.runtime.binary import find_runtime, runtime_version

if TYPE_CHECKING:
    from skiff.engine.containers import ContainerService
    from skiff.image.service import ImageService

log = logging.getLogger("skiff.daemon")


class Daemon:
    def __init__(self, config: DaemonConfig) -> None:
        self.config = config
        self.data_root = Path(config.data_root)
        self.exec_root = Path(config.exec_root)
        self.git_commit = ""
        self.engine_id = ""
        self.build_time = ""
        self.runtime_version = ""
        self._server: HTTPServer | None = None
        self.events = EventBus()
        self.images: ImageService | None = None  # set by start()
        self.containers: ContainerService  # set by start()
        self._sockets: list[Path] = []
        self._pidfile: Path | None = None

    async def start(self) -> None:
        from skiff.daemon.app import build_router, common_headers

        self.data_root.mkdir(parents=True, exist_ok=True, mode=0o711)
        self.exec_root.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._pidfile = write_pidfile(Path(self.config.pidfile))
        try:
            self.runtime_version = runtime_version(find_runtime())
        except NotFound as err:
            log.warning("%s", err)
        self.engine_id = engine_id(self.data_root)
        self.events.bind(asyncio.get_running_loop())
        await self._start_engine()

        self._server = HTTPServer(build_router(self).dispatch, common_headers())
        for host in self.config.listen:
            if host.scheme == "tcp":
                await self._server.listen_tcp(host.hostname, host.port, self._tls_context())
                log.info(
                    "API listen on %s:%d (TLS, client certificates required)",
                    host.hostname,
                    host.port,
                )
                continue
            path = Path(host.path)
            prepare_socket_path(path)
            await self._server.listen_unix(str(path))
            self._sockets.append(path)
            secure_socket(path, self.config.group)
            log.info("API listen on %s", path)

    def _tls_context(self) -> ssl.SSLContext:
        """TLS for TCP listeners: our certificate, and client certificates required
        and verified against the configured CA (dockerd's --tlsverify)."""
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=self.config.tlscacert)
        ctx.load_cert_chain(self.config.tlscert, self.config.tlskey)
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        return ctx

    async def _start_engine(self) -> None:
        from skiff.engine.containers import ContainerService
        from skiff.image.service import ImageService
        from skiff.runtime.driver import Runtime

        self.images = images = await asyncio.to_thread(ImageService, self.data_root)
        await asyncio.to_thread(images.recover)
        runtime_root = self.exec_root / "runtime"
        runtime_root.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.containers = ContainerService(
            data_root=self.data_root,
            exec_root=self.exec_root,
            images=images,
            events=self.events,
            runtime=Runtime(root=str(runtime_root)),
            log_opts=self.config.log_opts,
            log_driver=self.config.log_driver,
            cgroup_parent=self.config.cgroup_parent,
            standby=self.config.standby_containers,
        )
        await self.containers.restore()

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.close()
        if self.images is not None:
            try:
                await self.containers.shutdown(
                    self.config.live_restore, self.config.shutdown_timeout
                )
            except Exception:
                log.exception("stopping containers at shutdown")
            self.images.close()
        for path in self._sockets:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        if self._pidfile is not None:
            with contextlib.suppress(FileNotFoundError):
                self._pidfile.unlink()
        log.info("daemon shut down")

    async def serve_until(self, stop: asyncio.Event) -> None:
        await self.start()
        try:
            await stop.wait()
        finally:
            await self.stop()


def engine_id(data_root: Path) -> str:
    """This engine's ID (``/info``'s ID), made once and kept in the data root."""
    path = data_root / "engine-id"
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        import uuid

        value = str(uuid.uuid4())
        tmp = path.with_suffix(".tmp")
        tmp.write_text(value + "\n")
        os.replace(tmp, path)
        return value


def write_pidfile(path: Path) -> Path:
    """Writes our pid, refusing to start when another live process holds the file."""
    try:
        other = int(path.read_text().strip() or "0")
    except (FileNotFoundError, ValueError):
        other = 0
    if other and other != os.getpid() and Path(f"/proc/{other}").exists():
        raise Conflict(f"pid file found, ensure skiffd is not running or delete {path}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{os.getpid()}")
    return path


def prepare_socket_path(path: Path) -> None:
    """Makes room for a socket: a stale one is removed, a live one is an error."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists() and not path.is_symlink():
        return
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(str(path))
    except OSError:
        path.unlink()
        return
    finally:
        probe.close()
    raise Conflict(f"another daemon is already listening on {path}")


def secure_socket(path: Path, group: str) -> None:
    gid = -1
    with contextlib.suppress(KeyError):
        gid = grp.getgrnam(group).gr_gid
    if gid >= 0:
        os.chown(path, -1, gid)
    os.chmod(path, 0o660)
