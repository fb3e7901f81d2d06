"""The container lifecycle: create, start, stop, kill, restart, pause, wait, remove,
rename, list — and what happens on their own: exits noticed through the monitor,
restart policies, ``--rm``, and adopting running containers after a daemon restart.

Every container has an in-memory :class:`Live` beside its record: a lock serialising
lifecycle operations on it, a condition waiters sleep on, and the watch on its monitor
(the monitor's sync pipe, or its pidfd for one adopted after a restart). Blocking work
(the runtime, mounts, the monitor's start) runs in threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import logging
import os
import secrets
import select
import shutil
import signal as signals
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from skiff import _native, jsontext
from skiff.dirspread import spread_children
from skiff.engine import health, names, ocispec, textfiles
from skiff.engine import monitor as mon
from skiff.engine import standby as sb
from skiff.engine.cgroup_warm import CgroupWarmer
from skiff.engine.container import (
    CREATED,
    DEAD,
    EXITED,
    PAUSED,
    REMOVING,
    RESTARTING,
    RUNNING,
    Container,
)
from skiff.engine.monitor import StartFailed
from skiff.engine.stock import FdStock, lower_priority
from skiff.engine.store import ContainerStore
from skiff.errors import Conflict, InvalidArgument, NotFound, NotModified, SkiffError
from skiff.image.rootfs import RootfsMounter
from skiff.runtime.bundle import write_bundle
from skiff.runtime.driver import Runtime
from skiff.timefmt import rfc3339_nano

if TYPE_CHECKING:
    from skiff.engine.events import EventBus
    from skiff.image.service import ImageService

log = logging.getLogger("skiff.engine.containers")

DEFAULT_STOP_TIMEOUT = 10
#: Monitor directories are named by this many characters of the container ID (kept
#: unique at create), so that socket paths stay short.
MONITOR_DIR_LEN = 16
#: How long the clean-up after an exit waits for the monitor's own (seconds).
MONITOR_CLEANUP_TIMEOUT = 30.0
#: Monitors kept started ahead of need (see monitor.MonitorPool).
MONITOR_POOL_SIZE = 2
#: Network namespaces kept made ahead of need (loopback up; see skiff-core netns.rs).
NETNS_POOL_SIZE = 2
#: The container's own read-only layer of mount points (dockerd's "-init" layer): the
#: runtime mounts over these, so they never land in the container's upper dir (and
#: so never in its diff or a commit).
#: The mount points every container's root needs (dockerd's "-init" layer), one
#: read-only layer under the data root shared by all containers (older containers
#: may still have their own ``<container>/init``, which keeps working).
INIT_LAYER = "init-layer"
INIT_DIRS = ("dev", "dev/pts", "dev/shm", "dev/mqueue", "proc", "sys", "etc")
INIT_FILES = ("etc/hostname", "etc/hosts", "etc/resolv.conf")

#: Removed containers' directories wait for their background delete under this name.
TRASH_PREFIX = ".trash-"
#: A container's lease on its image's layers is this and its ID.
LEASE_PREFIX = "container-"

HOSTS_BASE = (
    "127.0.0.1\tlocalhost\n"
    "::1\tlocalhost ip6-localhost ip6-loopback\n"
    "fe00::\tip6-localnet\n"
    "ff00::\tip6-mcastprefix\n"
    "ff02::1\tip6-allnodes\n"
    "ff02::2\tip6-allrouters\n"
)

#: HostConfig keys and the values docker reports when the client sent none.
HOST_CONFIG_DEFAULTS: dict[str, Any] = {
    "Binds": None,
    "ContainerIDFile": "",
    "LogConfig": {"Type": "json-file", "Config": {}},
    "NetworkMode": "default",
    "PortBindings": {},
    "RestartPolicy": {"Name": "no", "MaximumRetryCount": 0},
    "AutoRemove": False,
    "VolumeDriver": "",
    "VolumesFrom": None,
    "ConsoleSize": [0, 0],
    "CapAdd": None,
    "CapDrop": None,
    "CgroupnsMode": "host",
    "Dns": [],
    "DnsOptions": [],
    "DnsSearch": [],
    "ExtraHosts": None,
    "GroupAdd": None,
    "IpcMode": "private",
    "Cgroup": "",
    "Links": None,
    "OomScoreAdj": 0,
    "PidMode": "",
    "Privileged": False,
    "PublishAllPorts": False,
    "ReadonlyRootfs": False,
    "SecurityOpt": None,
    "UTSMode": "",
    "UsernsMode": "",
    "ShmSize": 67108864,
    "Runtime": "skiff-runtime",
    "Isolation": "",
    "CpuShares": 0,
    "Memory": 0,
    "NanoCpus": 0,
    "CgroupParent": "",
    "BlkioWeight": 0,
    "BlkioWeightDevice": [],
    "BlkioDeviceReadBps": [],
    "BlkioDeviceWriteBps": [],
    "BlkioDeviceReadIOps": [],
    "BlkioDeviceWriteIOps": [],
    "CpuPeriod": 0,
    "CpuQuota": 0,
    "CpuRealtimePeriod": 0,
    "CpuRealtimeRuntime": 0,
    "CpusetCpus": "",
    "CpusetMems": "",
    "Devices": [],
    "DeviceCgroupRules": None,
    "DeviceRequests": None,
    "MemoryReservation": 0,
    "MemorySwap": 0,
    "MemorySwappiness": None,
    "OomKillDisable": False,
    "PidsLimit": None,
    "Ulimits": None,
    "CpuCount": 0,
    "CpuPercent": 0,
    "IOMaximumIOps": 0,
    "IOMaximumBandwidth": 0,
    "MaskedPaths": None,
    "ReadonlyPaths": None,
    "Init": None,
    "Sysctls": None,
    "Tmpfs": None,
    "Mounts": None,
}

RESTART_POLICIES = ("", "no", "always", "unless-stopped", "on-failure")


@dataclass
class AttachWaiter:
    """An attach client waiting for the next start: ``monitor`` gets the monitor's
    files once it runs; the client sets ``connected`` once attached."""

    monitor: asyncio.Future[mon.MonitorFiles]
    connected: asyncio.Future[None]


@dataclass
class Live:
    """What the daemon keeps in memory for a container."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)
    exits: int = 0  # how many exits were seen (next-exit waiters compare)
    removed: bool = False
    #: the monitor's pidfd (readable once it has exited, clean-up done)
    pidfd: int | None = None
    #: a pidfd of the container's init while it runs (taken at its start; None
    #: for one adopted after a daemon restart): signals go through it
    init_fd: int | None = None
    #: the monitor's sync pipe: the exit record, then its end, once init exited
    #: (before the monitor's clean-up); None for a monitor adopted after a
    #: daemon restart
    exit_fd: int | None = None
    #: what came on it so far
    exit_data: bytes = b""
    #: attach clients waiting for the monitor of the next start (they connect
    #: before the user process runs, so no output is lost)
    attach_waiters: list[AttachWaiter] = field(default_factory=list)
    restart_task: asyncio.Task[None] | None = None
    health_task: asyncio.Task[None] | None = None
    stopping: bool = False
    #: a `docker restart` is under way: its stop does not auto-remove (as dockerd)
    restarting: bool = False
    #: the clean-up after an exit (unmounting the root, the monitor's files), which
    #: runs on after the exit is reported; whatever touches the root awaits it
    cleanup: asyncio.Future[None] | None = None
    #: the container made ahead of need that this one took at its create, until
    #: its start (its spec then is the container's own)
    standby: sb.Standby | None = None
    #: what a standby made after this one's start is to be like (eligible ones)
    template: sb.Template | None = None
    #: files were copied into it since it took a standby (its process is
    #: resolved again at the start)
    standby_stale: bool = False


def signal_number(sig: str | int | None, default: int = signals.SIGTERM) -> int:
    """ "SIGKILL", "KILL", "9" or 9 as a signal number; InvalidArgument otherwise."""
    if sig is None or sig == "":
        return default
    if isinstance(sig, int):
        return sig
    text = str(sig).strip().upper()
    if text.isdigit():
        n = int(text)
        if 0 < n < 65:
            return n
    else:
        name = text if text.startswith("SIG") else "SIG" + text
        if name.startswith(("SIGRTMIN", "SIGRTMAX")):
            base = int(signals.SIGRTMIN) if name.startswith("SIGRTMIN") else int(signals.SIGRTMAX)
            rest = name[8:]
            try:
                return base + int(rest) if rest else base
            except ValueError:
                pass
        with contextlib.suppress(AttributeError):
            return int(getattr(signals, name))
    raise InvalidArgument(f"Invalid signal: {sig}")


def _init_pidfd(pid: int, monitor_pid: int) -> int | None:
    """A pidfd of the container's init ``pid``, if that pid is still init: the
    monitor (its parent) may already have reaped a short-lived one (it starts the
    process itself), and the pid been taken by another process since."""
    fd = mon.pidfd(pid)
    if fd is not None and mon.parent_of(pid) != monitor_pid:
        os.close(fd)  # the pidfd is of whatever has the pid now: not ours
        return None
    return fd


def start_error_code(message: str) -> int:
    """The exit code of a container whose process could not be started, by dockerd's
    rule (and the docker CLI's): 127 not found, 126 not executable, else 128."""
    text = message.lower()
    if "executable file not found" in text or "no such file or directory" in text:
        return 127
    if "permission denied" in text:
        return 126
    return 128


def parse_size(text: str) -> int:
    """docker's RAMInBytes: "10m", "1g", "512k", "100" (bytes)."""
    t = text.strip().lower()
    units = {"b": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}
    t = t.removesuffix("b") if len(t) > 1 and t[-2] in units else t
    if t and t[-1] in units:
        return int(float(t[:-1]) * units[t[-1]])
    return int(t)


class ContainerService:
    def __init__(
        self,
        *,
        data_root: Path,
        exec_root: Path,
        images: ImageService,
        events: EventBus,
        runtime: Runtime,
        log_opts: dict[str, str] | None = None,
        log_driver: str = "json-file",
        cgroup_parent: str = "/skiff",
        standby: bool = True,
    ) -> None:
        self.root = data_root / "containers"
        self.volumes_root = data_root / "volumes"
        # Short: the attach socket's path must fit in 108 bytes.
        self.monitors_root = exec_root / "m"
        self.images = images
        self.events = events
        self.runtime = runtime
        self.store = ContainerStore(images.db)
        self.mounter = RootfsMounter(data_root)
        self.log_opts = dict(log_opts or {})
        self.log_driver = log_driver
        self.cgroup_parent = "/" + cgroup_parent.strip("/")
        self.init_binary = ocispec.find_init_binary()
        self.warmer = CgroupWarmer()
        try:  # looked up once (two stats and an access per start otherwise)
            self.monitor_binary: Path | None = mon.find_monitor()
        except (StartFailed, NotFound):
            self.monitor_binary = None  # each start says what is missing
        self.cgroup_mounts = mon.write_cgroup_mounts(exec_root / "cgroup-mounts")
        self.monitor_pool = mon.MonitorPool(
            MONITOR_POOL_SIZE,
            self.monitor_binary,
            cgroup_parent=self.cgroup_parent,
            cgroup_mounts=self.cgroup_mounts,
        )
        self.netns_stock = FdStock(NETNS_POOL_SIZE, _native.new_netns, "netns-pool")
        # The daemon's own (this thread's): what a standby's monitor and init take
        # when used.
        self._nice = os.getpriority(os.PRIO_PROCESS, 0)
        self.standby = sb.StandbyPool(self._make_standby, self._discard_standby, standby)
        self._containers: dict[str, Container] = {}
        self._live: dict[str, Live] = {}
        self._names: dict[str, str] = {}
        #: names of containers being created (taken, not yet in _names)
        self._creating: set[str] = set()
        self._tasks: set[asyncio.Future[None]] = set()
        self.root.mkdir(parents=True, exist_ok=True, mode=0o711)
        self.monitors_root.mkdir(parents=True, exist_ok=True, mode=0o700)
        # Each container's directories in a block group of their own choosing (see
        # dirspread): its data, its monitor's and the runtime's state.
        for parent in (self.root, self.monitors_root, Path(runtime.root)):
            if parent.is_dir():
                spread_children(parent)
        self.init_layer = data_root / INIT_LAYER
        ensure_init_layer(self.init_layer)

    # ------------------------------------------------------------------ lookup

    def get(self, ref: str) -> Container:
        """By full ID, name (with or without "/") or unique ID prefix."""
        c = self._containers.get(ref)
        if c is not None:
            return c
        cid = self._names.get(ref.lstrip("/"))
        if cid is not None:
            return self._containers[cid]
        if ref:
            found = [c for cid, c in self._containers.items() if cid.startswith(ref)]
            if len(found) == 1:
                return found[0]
            if len(found) > 1:
                raise InvalidArgument(f"multiple IDs found with provided prefix: {ref}")
        raise NotFound(f"No such container: {ref}")

    def all(self) -> list[Container]:
        return list(self._containers.values())

    def is_running(self, c: Container) -> bool:
        """Running (or paused, or about to restart) and not removed."""
        return c.id in self._live and c.state.status in (RUNNING, PAUSED, RESTARTING)

    def live(self, c: Container) -> Live:
        return self._live[c.id]

    def publish(self, c: Container, action: str, **extra: str) -> None:
        attrs = {"image": c.image_name, "name": c.name}
        attrs.update({k: str(v) for k, v in (c.config.get("Labels") or {}).items()})
        attrs.update(extra)
        self.events.publish("container", action, c.id, attrs)

    def save(self, c: Container) -> None:
        self.store.save(c)

    async def settle(self, c: Container) -> None:
        """Waits for the clean-up after the container's last exit (the root
        unmounted), which runs on after the exit is reported."""
        cleanup = self.live(c).cleanup
        if cleanup is not None and not cleanup.done():
            with contextlib.suppress(Exception):
                await asyncio.shield(cleanup)

    def monitor_files(self, c: Container) -> mon.MonitorFiles:
        return mon.MonitorFiles(self.monitors_root / c.id[:MONITOR_DIR_LEN])

    # ------------------------------------------------------------------ create

    async def create(self, body: dict[str, Any], name: str | None) -> Container:
        if not isinstance(body, dict):
            raise InvalidArgument("config cannot be empty in order to create a container")
        image_ref = body.get("Image")
        if not image_ref or not isinstance(image_ref, str):
            raise InvalidArgument("config cannot be empty in order to create a container")
        hc = body.get("HostConfig") or {}
        if not isinstance(hc, dict):
            raise InvalidArgument("HostConfig must be an object")
        _validate_host_config(hc)
        if name:
            name = names.validate(name)
            self._check_name_free(name)
        else:
            name = names.generate(set(self._names) | self._creating)
        # Taken until the container is registered: another create that comes
        # meanwhile (this one awaits its directory) cannot take it too.
        self._creating.add(name)
        try:
            return await self._create(body, name, hc)
        finally:
            self._creating.discard(name)

    def _check_name_free(self, name: str) -> None:
        if name in self._names or name in self._creating:
            other = self._names.get(name) or "being created"
            raise Conflict(
                f'Conflict. The container name "/{name}" is already in use by container '
                f'"{other}". You have to remove (or rename) that container to be able '
                "to reuse that name."
            )

    async def _create(self, body: dict[str, Any], name: str, hc: dict[str, Any]) -> Container:
        image_ref = body["Image"]
        try:
            # A few indexed SQLite reads: not worth a thread hop.
            record, defaults = self.images.container_defaults(image_ref)
        except NotFound:
            raise NotFound(f"No such image: {_familiar(image_ref)}") from None

        config = _merge_config(body, defaults)
        entry = list(config.get("Entrypoint") or [])
        cmd = list(config.get("Cmd") or [])
        argv = entry + cmd
        if not argv:
            raise InvalidArgument("no command specified")
        host_config = {**HOST_CONFIG_DEFAULTS, **hc}
        log_config = dict(hc.get("LogConfig") or {})
        if not log_config.get("Type"):
            # The daemon's driver and options, under what the client gave.
            log_config = {
                "Type": self.log_driver,
                "Config": {**self.log_opts, **(log_config.get("Config") or {})},
            }
        host_config["LogConfig"] = log_config
        if host_config.get("NetworkMode") == "":
            host_config["NetworkMode"] = "default"

        _name_anonymous_volumes(config, host_config)
        # The shared init layer (the mount points) on top of the image's layers.
        lowers = [str(self.init_layer)]
        lowers += self.images.snapshots.lower_paths(record.chain)

        def container(cid: str) -> Container:
            return Container(
                id=cid,
                name=name,
                created=rfc3339_nano(),
                image_id=record.id,
                config=config,
                host_config=host_config,
                path=argv[0],
                args=argv[1:],
                root=self.root / cid,
                lowers=lowers,
            )

        template = None
        if sb.eligible(config, host_config):
            template = sb.Template(
                record.id,
                record.chain,
                tuple(lowers),
                config,
                host_config,
                argv[0],
                tuple(argv[1:]),
            )
        taken = self.standby.take(template.key) if template is not None else None
        if taken is not None:
            # Made ahead of need: the container gets its id, if it comes out the same.
            # On the loop: a thread hop costs 0.1-0.4 ms here, the claim ~1 ms, and a
            # create is answered when it is done either way.
            c = container(taken.container.id)
            try:
                claimed = self._claim(c, taken)
            except BaseException:
                self.standby.give_back(taken)
                raise
            if claimed:
                self._register(c)
                self.live(c).standby = taken
            else:
                self.standby.give_back(taken)
                taken = None
        if taken is None:
            # A start usually follows a create (one that took a standby moves no
            # process into a cgroup).
            self.warmer.poke()
            c = container(self._new_id())
            await asyncio.to_thread(self._prepare_dir, c, record.chain)
            self._register(c)
        self.live(c).template = template
        self.publish(c, "create")
        return c

    def _new_id(self) -> str:
        taken = tuple(self._containers)  # (also called from the standby thread)
        cid = secrets.token_hex(32)
        while any(other.startswith(cid[:MONITOR_DIR_LEN]) for other in taken):
            cid = secrets.token_hex(32)
        return cid

    def _register(self, c: Container) -> None:
        self._containers[c.id] = c
        self._names[c.name] = c.id
        self._live[c.id] = Live()

    def _prepare_dir(
        self, c: Container, chain: tuple[str, ...], row: bool = True
    ) -> dict[str, str]:
        """The container's directory, its lease on the image's layers and (unless
        ``row`` is false: a standby) its row in the store; nothing of them is left
        when one fails. Returns the files made in it (name -> text)."""
        c.root.mkdir(mode=0o710)
        try:
            for d in (c.upper, c.work, c.rootfs):
                d.mkdir()
            files = self._dir_files(c)
            for file, text in files.items():
                (c.root / file).write_text(text)
            # One transaction (one commit) for the lease and the row.
            with self.images.db.transaction():
                if chain:
                    lease = self.images.meta.create_lease(None, lease_id=f"{LEASE_PREFIX}{c.id}")
                    self.images.meta.lease_add(lease, "layer", chain[-1])
                if row:
                    self.store.add(c)
        except BaseException:
            shutil.rmtree(c.root, ignore_errors=True)
            raise
        return files

    def _dir_files(self, c: Container) -> dict[str, str]:
        """The files of the container's directory that the runtime binds in
        /etc: hostname, hosts, resolv.conf."""
        hc = c.host_config
        host_net = hc.get("NetworkMode") == "host"
        hostname = os.uname().nodename if host_net else (c.config.get("Hostname") or c.id[:12])
        hosts = HOST_HOSTS.read() if host_net else HOSTS_BASE
        for entry in hc.get("ExtraHosts") or []:
            host, _, ip = entry.partition(":")
            if not ip:
                raise InvalidArgument(f"invalid extra host {entry!r}: use host:ip")
            if ip == "host-gateway":
                ip = "127.0.0.1"
            hosts += f"{ip}\t{host}\n"
        return {
            "hostname": hostname + "\n",
            "hosts": hosts,
            "resolv.conf": _resolv_conf(hc, host_net),
        }

    # ------------------------------------------------------------------ start

    async def start(self, c: Container) -> None:
        live = self.live(c)
        async with live.lock:
            if c.state.status in (RUNNING, PAUSED):
                raise NotModified("container already started")
            if c.state.status == REMOVING or live.removed:
                raise Conflict(f"container {c.id} is marked for removal and cannot be started")
            if c.state.status == DEAD:
                raise Conflict(f"container {c.id} is dead and cannot be started")
            try:
                await self._start_locked(c)
            except SkiffError:
                failed = True
                if not c.host_config.get("AutoRemove"):
                    raise
            else:
                failed = False
        if failed:
            # As dockerd: an --rm container that cannot start is removed (the docker
            # CLI waits for that before it reports the error).
            with contextlib.suppress(SkiffError):
                await self.remove(c, force=True)
            if c.state.exit_code in (126, 127):
                raise InvalidArgument(c.state.error)
            raise StartFailed(c.state.error)

    async def _start_locked(self, c: Container) -> None:
        live = self.live(c)
        await self.settle(c)
        live.stopping = False
        c.manually_stopped = False
        files = self.monitor_files(c)
        # Made ahead of need (taken at the create): its process comes with the start.
        standby, live.standby = live.standby, None
        if standby is None:
            self.warmer.poke()
        # With no attach client to connect first, the monitor starts the process
        # itself right after creating the container.
        start_now = not live.attach_waiters and standby is None
        started: mon.Started | None = None
        process = b""
        try:
            if standby is not None:
                process = await self._standby_process(c, live, standby)
                started = standby.started
            else:
                started, _ = await asyncio.to_thread(self._create_in_runtime, c, files, start_now)
            # Attach clients connect to the monitor now, before the user process runs.
            waiters, live.attach_waiters = live.attach_waiters, []
            for waiter in waiters:
                if not waiter.monitor.done():
                    waiter.monitor.set_result(files)
            if waiters:
                await asyncio.wait([w.connected for w in waiters], timeout=2)
            assert started is not None
            if standby is not None:
                sync, standby.sync = standby.sync, None
                assert sync is not None
                pids = [started.pid, started.monitor_pid]
                await mon.start_standby(sync, process, pids, self._nice)
                monitor_start = c.state.monitor_start  # known since the claim
            else:
                if not start_now:
                    await mon.start_container(files)
                monitor_start = started.monitor_start or mon.start_time(started.monitor_pid)
            c.state.pid = started.pid
            c.state.monitor_pid = started.monitor_pid
            c.state.monitor_start = monitor_start
            c.state.status = RUNNING
            c.state.started_at = rfc3339_nano()
            c.state.error = ""
            c.state.exit_code = 0
            c.state.oom_killed = False
            c.has_been_started = True
            self.save(c)
        except BaseException as err:
            if standby is not None:
                # Its init ended (or is ended now, if it never got its process):
                # the monitor has cleaned up before the clean-up below.
                await asyncio.to_thread(standby.retire)
            elif started is not None and started.exit_fd >= 0:
                os.close(started.exit_fd)
            if not isinstance(err, SkiffError):
                raise
            await self._start_failed(c, err)
            if c.state.exit_code in (126, 127):
                # dockerd's rule: a command that cannot be run is the caller's error.
                raise InvalidArgument(err.message) from None
            raise
        assert started is not None
        self._close_init_fd(live)  # (none is left by an exit handled as usual)
        if standby is not None:
            if standby.init_fd >= 0:
                live.init_fd, standby.init_fd = standby.init_fd, -1
            standby.close_pidfds()
        else:
            live.init_fd = _init_pidfd(started.pid, started.monitor_pid)
        self._watch(c, started.exit_fd, started.exit_data)
        self.publish(c, "start")
        live.health_task = health.start(self, c)
        async with live.changed:
            live.changed.notify_all()
        if live.template is not None:
            # The next one like it is made while this one runs, a little later: not
            # while its start is answered and the calls that often follow come.
            asyncio.get_running_loop().call_later(sb.MAKE_DELAY, self.standby.want, live.template)

    async def _start_failed(self, c: Container, err: SkiffError) -> None:
        """Records a failed start (exit code by dockerd's rule), tells the waiting
        attach clients, and undoes what the start made."""
        live = self.live(c)
        c.state.error = err.message
        c.state.exit_code = start_error_code(err.message)
        self.save(c)
        for waiter in live.attach_waiters:
            if not waiter.monitor.done():
                waiter.monitor.set_exception(err)
        live.attach_waiters.clear()
        # Deletes the container from the runtime too (killing a created init).
        await asyncio.to_thread(self._cleanup_after_exit, c)

    def _create_in_runtime(
        self,
        c: Container,
        files: mon.MonitorFiles,
        start: bool = False,
        reserved: mon.Reserved | None = None,
    ) -> tuple[mon.Started, dict[str, Any]]:
        """Mount the rootfs, write the bundle and start the monitor (runtime create);
        with ``reserved`` (a monitor taken from the pool, which spawn gives its
        command line; the caller lets it go if that never happens), a container made
        ahead of need by that monitor (its init parked before its process). Returns
        the monitor's answer and the spec."""
        netns_fd = -1
        try:
            if not c.rootfs_mounted():
                lowers = [Path(p) for p in c.lowers]
                self.mounter.mount(
                    lowers,
                    c.rootfs,
                    upper=c.upper,
                    work=c.work,
                    volatile=bool(c.host_config.get("AutoRemove")),
                    made=True,
                )
            net_ns = None
            mode = c.host_config.get("NetworkMode") or ""
            if mode.startswith("container:"):
                other = self.get(mode.split(":", 1)[1])
                if other.state.status != RUNNING:
                    raise Conflict(f"cannot join network of a non running container: {other.id}")
                net_ns = f"/proc/{other.state.pid}/ns/net"
            elif mode != "host":
                # A namespace of its own, made ahead of need (its loopback up): the
                # runtime joins it instead of making one (~0.5 ms of the start).
                netns_fd = self.netns_stock.take()
                if netns_fd < 0:
                    netns_fd = _native.new_netns()
                net_ns = f"/proc/{os.getpid()}/fd/{netns_fd}"
            spec = self._spec(c, net_ns)
            write_bundle(c.root, spec)
            log_path, max_size, max_files = self._log_options(c)
            if (Path(self.runtime.root) / c.id).exists():
                # Left by a crash between the runtime's create and our cleanup.
                with contextlib.suppress(SkiffError):
                    self.runtime.delete(c.id, force=True)
            started = mon.spawn(
                container_id=c.id,
                monitor=self.monitor_binary,
                bundle=c.root,
                files=files,
                runtime=self.runtime.binary,
                runtime_root=self.runtime.root,
                log=log_path,
                terminal=c.tty,
                stdin=bool(c.config.get("OpenStdin")),
                log_max_size=max_size,
                log_max_files=max_files,
                start=start,
                pool=self.monitor_pool,
                reserved=reserved,
                cgroup_mounts=self.cgroup_mounts,
            )
            return started, spec
        except BaseException:
            with contextlib.suppress(OSError):
                self.mounter.unmount(c.rootfs, detach=True)
            raise
        finally:
            # The container's init holds the namespace from here.
            if netns_fd >= 0:
                os.close(netns_fd)

    async def _standby_process(self, c: Container, live: Live, standby: sb.Standby) -> bytes:
        """What the start of a container that took ``standby`` sends its init."""
        if not live.standby_stale:
            return standby.start_message  # made at the claim
        # Files were copied in since the create: the user and home are resolved
        # again from its root, as the usual start does.
        live.standby_stale = False
        spec = await asyncio.to_thread(self._spec, c, sb.netns_path(standby.spec))
        return sb.start_message(spec)

    def _spec(self, c: Container, netns_path: str | None) -> dict[str, Any]:
        spec = ocispec.build(
            c, volumes_root=self.volumes_root, netns_path=netns_path, init_binary=self.init_binary
        )
        spec["linux"]["cgroupsPath"] = f"{self.cgroup_parent}/{c.id}"
        return spec

    def _log_options(self, c: Container) -> tuple[Path, int, int]:
        """The monitor's log file, max size and file count."""
        opts = c.host_config.get("LogConfig", {}).get("Config") or {}
        log_type = c.host_config.get("LogConfig", {}).get("Type") or "json-file"
        max_size = parse_size(opts["max-size"]) if opts.get("max-size") else 0
        max_files = int(opts.get("max-file", "1") or 1)
        return (c.log_path if log_type != "none" else Path("/dev/null"), max_size, max_files)

    # ------------------------------------------------------------------ standby

    def _make_standby(self, t: sb.Template) -> sb.Standby:
        """A container like ``t``'s made ahead of need (in the standby thread)."""
        # Taken before anything is made: in a burst of starts, which take them too,
        # none may be left by the time it is needed.
        fd = self.monitor_pool.take()
        if fd < 0:
            raise mon.NoMonitorReady("no monitor started ahead of need is ready")
        # The monitor is let go on the way out unless spawn gave it its work.
        with mon.Reserved(fd) as reserved:
            cid = self._new_id()
            c = Container(
                id=cid,
                name="",
                created=rfc3339_nano(),
                image_id=t.image_id,
                config=copy.deepcopy(t.config),
                host_config=copy.deepcopy(t.host_config),
                path=t.path,
                args=list(t.args),
                root=self.root / cid,
                lowers=list(t.lowers),
            )
            files = self._prepare_dir(c, t.chain, row=False)
            try:
                started, spec = self._create_in_runtime(c, self.monitor_files(c), reserved=reserved)
            except BaseException:
                self._remove_standby_files(c)
                raise
        init_fd = mon.pidfd(started.pid)
        monitor_fd = mon.pidfd(started.monitor_pid)
        s = sb.Standby(
            template=t,
            container=c,
            spec=spec,
            files=files,
            log_options=self._log_options(c),
            started=started,
            init_fd=-1 if init_fd is None else init_fd,
            monitor_fd=-1 if monitor_fd is None else monitor_fd,
        )
        s.monitor_start = started.monitor_start or mon.start_time(started.monitor_pid)
        try:
            if init_fd is None or monitor_fd is None:
                raise StartFailed("the container made ahead of need ended at once")
            s.sync = mon.start_socket(self.monitor_files(c))
        except BaseException:
            self._discard_standby(s)
            raise
        return s

    def _claim(self, c: Container, s: sb.Standby) -> bool:
        """Makes the standby ``s`` container ``c`` (which has its id) if ``c``
        comes out the same but for its process and hostname: rewrites the files
        that differ and the bundle, adds the row. False (nothing changed) else."""
        try:
            spec = self._claim_spec(c, s)
            files = self._dir_files(c)
            log_options = self._log_options(c)
        except Exception:  # it fails again the usual way (at the start, as dockerd)
            return False
        if not sb.same_container(spec, s.spec) or log_options != s.log_options:
            return False
        message = sb.start_message(spec)
        if len(message) > sb.MAX_PROCESS:
            return False
        sysctl = spec["linux"].get("sysctl") or {}
        if {"kernel.hostname", "kernel.domainname"} & set(sysctl):
            return False  # set after the hostname, as the usual way does
        for file, text in files.items():
            if s.files.get(file) != text:
                textfiles.rewrite(c.root / file, text.encode())
        # In place (the runtime has read it; only a later `exec` reads it again): a
        # new file and a rename cost as much as the rest of the claim.
        textfiles.rewrite(c.root / "config.json", jsontext.dumps(spec))
        # A restarted daemon finds its monitor (see restore).
        c.state.monitor_pid = s.started.monitor_pid
        c.state.monitor_start = s.monitor_start
        self.store.add(c)  # (one statement: a transaction of its own)
        s.spec, s.start_message = spec, message
        return True

    def _claim_spec(self, c: Container, s: sb.Standby) -> dict[str, Any]:
        """The spec of ``c``, which has the id of standby ``s``: when their configs
        differ in the command alone (all a spec holds follows from the config, host
        config, id and name; the command goes only in the process's argv), the
        standby's with ``c``'s argv and name; else built whole."""
        made = s.container
        if c.host_config == made.host_config and _but_command(c.config) == _but_command(
            made.config
        ):
            process = {**s.spec["process"], "args": ocispec.process_args(c, self.init_binary)}
            return {**s.spec, "process": process, "annotations": ocispec.spec_annotations(c)}
        return self._spec(c, sb.netns_path(s.spec))

    def _discard_standby(self, s: sb.Standby) -> None:
        """Ends a standby nobody took and removes what it made."""
        s.retire()
        c = s.container
        # (Its monitor deleted it from the runtime, unless it was gone or late.)
        self._cleanup_after_exit(c)
        self._remove_standby_files(c)
        try:
            self.images.meta.get_image(c.image_id)
        except NotFound:
            # Deleted meanwhile: its layers stayed for this root only.
            self.images.prune()

    def _remove_standby_files(self, c: Container) -> None:
        _rmtree(self.monitor_files(c).dir)
        trash = self.root / f"{TRASH_PREFIX}{c.id}"
        with contextlib.suppress(FileNotFoundError):
            os.rename(c.root, trash)
            _rmtree(trash)
        with contextlib.suppress(NotFound):
            self.images.meta.delete_lease(f"{LEASE_PREFIX}{c.id}")

    def holds_standby(self, c: Container) -> bool:
        """Created with a standby, not started yet: its root is mounted, in use."""
        live = self._live.get(c.id)
        return live is not None and live.standby is not None

    async def drop_standby(self, c: Container) -> None:
        """Ends the standby a created container took (its start then makes it the
        usual way): before a change of its config."""
        live = self.live(c)
        s, live.standby = live.standby, None
        if s is not None:
            await asyncio.to_thread(s.retire)
            await asyncio.to_thread(self._cleanup_after_exit, c)
            c.state.monitor_pid = c.state.monitor_start = 0
            self.save(c)

    # ------------------------------------------------------------------ exits

    def _watch(self, c: Container, exit_fd: int = -1, exit_data: bytes = b"") -> None:
        """Calls :meth:`_on_monitor_exit` when the container has exited: when the
        exit record has come whole on the monitor's sync pipe ``exit_fd`` (or the
        pipe ended without one) when there is one (the monitor's clean-up goes on
        after), else when the monitor ends (its pidfd)."""
        live = self.live(c)
        loop = asyncio.get_running_loop()
        fd = mon.pidfd(c.state.monitor_pid) if c.state.monitor_pid else None
        live.pidfd = fd
        if exit_fd >= 0:
            live.exit_fd = exit_fd
            live.exit_data = exit_data
            loop.add_reader(exit_fd, self._on_monitor_exit_cb, c.id, exit_fd)
        elif fd is None:
            loop.call_soon(self._on_monitor_exit_cb, c.id, -1)
        else:
            loop.add_reader(fd, self._on_monitor_exit_cb, c.id, fd)

    def _on_monitor_exit_cb(self, cid: str, watched: int) -> None:
        live = self._live.get(cid)
        if watched >= 0 and (live is None or watched not in (live.exit_fd, live.pidfd)):
            # Nobody follows this container any more (removed meanwhile): let go
            # of the descriptor, or the loop would be called for it forever.
            asyncio.get_running_loop().remove_reader(watched)
            os.close(watched)
            return
        monitor_fd = None
        record = None
        if live is not None:
            if live.exit_fd is not None:
                # Readable: the exit record (gathered until its line is whole), or
                # the end.
                try:
                    chunk = os.read(live.exit_fd, 4096)
                except OSError:
                    chunk = b""
                if chunk:
                    live.exit_data += chunk
                    if not live.exit_data.endswith(b"\n"):
                        return
                    # The whole record (one line): the end that follows is not
                    # awaited (the monitor is often preempted by this wake-up
                    # between the two, and its end would cost another).
                record = mon.parse_exit(live.exit_data)
            monitor_fd = self._unwatch(live)
        c = self._containers.get(cid)
        if c is None:
            if monitor_fd is not None:
                os.close(monitor_fd)
            return
        task = asyncio.ensure_future(self._handle_exit(c, monitor_fd, record))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @staticmethod
    def _close_init_fd(live: Live) -> None:
        fd, live.init_fd = live.init_fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)

    async def _signal(self, c: Container, number: int) -> None:
        """Sends the container's init signal ``number``: through the pidfd taken at
        its start (the runtime's ``kill``, a process each time, took ~5 ms, and a
        ``docker rm -f`` of many containers sends many), else through the runtime
        (a container adopted after a daemon restart)."""
        fd = self.live(c).init_fd
        if fd is None:
            await asyncio.to_thread(self.runtime.kill, c.id, str(number))
            return
        try:
            signals.pidfd_send_signal(fd, number)
        except ProcessLookupError:
            raise Conflict(f"container {c.id} is not running") from None
        except OSError as err:  # EINVAL: no such signal number
            raise InvalidArgument(f"Invalid signal: {number}: {err.strerror}") from None

    @staticmethod
    def _unwatch(live: Live) -> int | None:
        """Stops watching the monitor; returns its pidfd (the caller's to close)."""
        loop = asyncio.get_running_loop()
        if live.exit_fd is not None:
            loop.remove_reader(live.exit_fd)
            os.close(live.exit_fd)
            live.exit_fd = None
            live.exit_data = b""
        elif live.pidfd is not None:
            loop.remove_reader(live.pidfd)
        fd, live.pidfd = live.pidfd, None
        return fd

    async def _handle_exit(
        self,
        c: Container,
        monitor_fd: int | None = None,
        record: dict[str, Any] | None = None,
    ) -> None:
        live = self.live(c)
        async with live.lock:
            if c.state.status not in (RUNNING, PAUSED):
                if monitor_fd is not None:
                    os.close(monitor_fd)
                return
            files = self.monitor_files(c)
            # From the sync pipe; else (an adopted monitor) from the exit file.
            record = record or mon.read_exit(files) or {}
            code = int(record.get("exit_code", 255))
            state_oom = bool(record.get("oom_killed"))
            c.state.exit_code = code
            c.state.oom_killed = state_oom
            c.state.finished_at = str(record.get("finished_at") or rfc3339_nano())
            c.state.status = EXITED
            c.state.pid = 0
            c.state.monitor_pid = 0
            c.state.monitor_start = 0
            self._close_init_fd(live)
            if live.health_task is not None:
                live.health_task.cancel()
                live.health_task = None
                if c.state.health is not None:
                    c.state.health["Status"] = "unhealthy"
            # Waiters learn of the exit now; unmounting the root (which syncs
            # its filesystem) goes on meanwhile, and a start, remove or copy
            # awaits it (settle).
            live.cleanup = asyncio.ensure_future(self._clean_up_after_monitor(c, monitor_fd))
            live.cleanup.add_done_callback(_log_cleanup_failure)
            restart = self._should_restart(c)
            if restart:
                c.restart_count += 1
                c.state.status = RESTARTING
            self.save(c)
            live.exits += 1
            self.publish(c, "die", exitCode=str(code))
            async with live.changed:
                live.changed.notify_all()
        if restart:
            live.restart_task = asyncio.ensure_future(self._restart_later(c))
        elif c.host_config.get("AutoRemove") and not live.restarting:
            with contextlib.suppress(SkiffError):
                await self.remove(c, force=True, volumes=True)

    async def _clean_up_after_monitor(self, c: Container, monitor_fd: int | None) -> None:
        """The clean-up after an exit, once the monitor (its pidfd ``monitor_fd``)
        has done its own: it deletes the container from the runtime after
        reporting the exit."""
        if monitor_fd is not None:
            loop = asyncio.get_running_loop()
            gone: asyncio.Future[None] = loop.create_future()

            def ended() -> None:
                if not gone.done():
                    gone.set_result(None)

            loop.add_reader(monitor_fd, ended)
            try:
                await asyncio.wait_for(gone, MONITOR_CLEANUP_TIMEOUT)
            except TimeoutError:
                log.warning("the monitor of %s is still cleaning up; going on", c.id[:12])
            finally:
                loop.remove_reader(monitor_fd)
                os.close(monitor_fd)
        await asyncio.to_thread(self._cleanup_after_exit, c)

    def _cleanup_after_exit(self, c: Container) -> None:
        if (Path(self.runtime.root) / c.id).exists():
            with contextlib.suppress(SkiffError):
                self.runtime.delete(c.id, force=True)
        if c.rootfs_mounted():
            with contextlib.suppress(OSError):
                self.mounter.unmount(c.rootfs, detach=True)
        _rmtree(self.monitor_files(c).dir)

    def _should_restart(self, c: Container) -> bool:
        live = self.live(c)
        if live.stopping or c.manually_stopped or live.removed:
            return False
        policy = c.host_config.get("RestartPolicy") or {}
        name = policy.get("Name") or "no"
        if name in ("always", "unless-stopped"):
            return True
        if name == "on-failure":
            limit = int(policy.get("MaximumRetryCount") or 0)
            return c.state.exit_code != 0 and (limit == 0 or c.restart_count < limit)
        return False

    async def _restart_later(self, c: Container) -> None:
        delay = min(0.1 * (2 ** max(0, c.restart_count - 1)), 60.0)
        await asyncio.sleep(delay)
        live = self.live(c)
        async with live.lock:
            if c.state.status != RESTARTING or live.removed:
                return
            try:
                await self._start_locked(c)
            except SkiffError as err:
                log.warning("restarting container %s failed: %s", c.id[:12], err.message)
                c.state.status = EXITED
                self.save(c)
                async with live.changed:
                    live.changed.notify_all()

    # ------------------------------------------------------------------ stop, kill

    async def kill(self, c: Container, sig: str | int | None = None) -> None:
        number = signal_number(sig, signals.SIGKILL)
        if c.state.status not in (RUNNING, PAUSED, RESTARTING):
            raise Conflict(f"Cannot kill container: {c.id}: container {c.id} is not running")
        if c.state.status == RESTARTING:
            live = self.live(c)
            live.stopping = True
            if live.restart_task is not None:
                live.restart_task.cancel()
            c.state.status = EXITED
            self.save(c)
            return
        live = self.live(c)
        # As dockerd: a killed container counts as stopped by hand (no restart).
        c.manually_stopped = True
        self.save(c)
        exits = live.exits
        await self._signal(c, number)
        self.publish(c, "kill", signal=str(number))
        if number == signals.SIGKILL:
            # dockerd answers a SIGKILL once the container is down.
            await self._wait_exit(c, exits, 10)

    async def stop(self, c: Container, timeout: int | None = None, sig: str | None = None) -> None:
        live = self.live(c)
        if c.state.status == RESTARTING:
            live.stopping = True
            c.manually_stopped = True
            if live.restart_task is not None:
                live.restart_task.cancel()
            c.state.status = EXITED
            self.save(c)
            return
        if c.state.status not in (RUNNING, PAUSED):
            raise NotModified("container already stopped")
        live.stopping = True
        c.manually_stopped = True
        self.save(c)
        stop_signal = signal_number(sig or c.config.get("StopSignal"), signals.SIGTERM)
        if timeout is None:
            timeout = c.config.get("StopTimeout")
            timeout = DEFAULT_STOP_TIMEOUT if timeout is None else int(timeout)
        exits = live.exits
        if c.state.status == PAUSED:
            await self.unpause(c)
        with contextlib.suppress(SkiffError):
            await self._signal(c, stop_signal)
            self.publish(c, "kill", signal=str(stop_signal))
        if timeout < 0 or not await self._wait_exit(c, exits, timeout):
            if timeout >= 0:
                with contextlib.suppress(SkiffError):
                    await self._signal(c, signals.SIGKILL)
                    self.publish(c, "kill", signal=str(int(signals.SIGKILL)))
            await self._wait_exit(c, exits, None)
        self.publish(c, "stop")

    async def _wait_exit(self, c: Container, exits: int, timeout: float | None) -> bool:
        live = self.live(c)

        async def done() -> None:
            async with live.changed:
                await live.changed.wait_for(lambda: live.exits > exits or live.removed)

        try:
            await asyncio.wait_for(done(), timeout)
            return True
        except TimeoutError:
            return False

    async def restart(
        self, c: Container, timeout: int | None = None, sig: str | None = None
    ) -> None:
        live = self.live(c)
        live.restarting = True
        try:
            if c.state.status in (RUNNING, PAUSED, RESTARTING):
                await self.stop(c, timeout, sig)
            async with live.lock:
                if c.state.status not in (RUNNING, PAUSED):
                    await self._start_locked(c)
        finally:
            live.restarting = False
        self.publish(c, "restart")

    async def pause(self, c: Container) -> None:
        if c.state.status == PAUSED:
            raise Conflict(f"Container {c.id} is already paused")
        if c.state.status != RUNNING:
            raise Conflict(f"Container {c.id} is not running")
        await asyncio.to_thread(self.runtime.pause, c.id)
        c.state.status = PAUSED
        self.save(c)
        self.publish(c, "pause")

    async def unpause(self, c: Container) -> None:
        if c.state.status != PAUSED:
            raise Conflict(f"Container {c.id} is not paused")
        await asyncio.to_thread(self.runtime.resume, c.id)
        c.state.status = RUNNING
        self.save(c)
        self.publish(c, "unpause")

    # ------------------------------------------------------------------ wait

    async def wait(self, c: Container, condition: str = "not-running") -> tuple[int, str]:
        """Waits for the condition; returns (exit code, error message)."""
        if condition not in ("not-running", "next-exit", "removed", ""):
            raise InvalidArgument(f"invalid condition: {condition!r}")
        live = self._live.get(c.id)
        if live is None:
            # Removed since the caller looked it up: that meets every condition,
            # as a removal during the wait does.
            return c.state.exit_code, c.state.error
        start_exits = live.exits

        def ready() -> bool:
            if condition == "removed":
                return live.removed
            if condition == "next-exit":
                return live.exits > start_exits or live.removed
            return c.state.status not in (RUNNING, PAUSED, RESTARTING) or live.removed

        async with live.changed:
            await live.changed.wait_for(ready)
        return c.state.exit_code, c.state.error

    # ------------------------------------------------------------------ remove

    async def remove(self, c: Container, *, force: bool = False, volumes: bool = False) -> None:
        live = self.live(c)
        if live.removed:
            return
        if c.state.status in (RUNNING, PAUSED, RESTARTING) and not force:
            state = "paused" if c.state.status == PAUSED else "running"
            if c.state.status == PAUSED:
                raise Conflict(
                    f'cannot remove container "/{c.name}": container is paused and must '
                    "be unpaused first"
                )
            raise Conflict(
                f'cannot remove container "/{c.name}": container is {state}: stop the '
                "container before removing or force remove"
            )
        if c.state.status in (RUNNING, PAUSED, RESTARTING):
            live.stopping = True
            if live.restart_task is not None:
                live.restart_task.cancel()
            if c.state.status == RESTARTING:
                c.state.status = EXITED
            else:
                exits = live.exits
                with contextlib.suppress(SkiffError):
                    await self._signal(c, signals.SIGKILL)
                    self.publish(c, "kill", signal=str(int(signals.SIGKILL)))
                if not await self._wait_exit(c, exits, 15):
                    raise Conflict(f"could not kill container {c.id}")
        async with live.lock:
            if live.removed:
                return
            # A start that got in after the kill above leaves a watch behind: the
            # clean-up of the removal (a forced delete) ends that container.
            fd = self._unwatch(live)
            if fd is not None:
                os.close(fd)
            self._close_init_fd(live)
            c.state.status = REMOVING
            self.store.delete(c.id)
            self._containers.pop(c.id, None)
            if self._names.get(c.name) == c.id:
                del self._names[c.name]
            live.removed = True
            self.publish(c, "destroy")
            async with live.changed:
                live.changed.notify_all()
        self._live.pop(c.id, None)
        # Gone for every client from here; its files go in the background (after
        # the last exit's clean-up). A daemon that stops first finishes them at
        # its next start (sweep_leftovers).
        task = asyncio.ensure_future(self._dispose(c, live))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _dispose(self, c: Container, live: Live) -> None:
        """Removes a removed container's files, then its lease on the image's
        layers (so they stay while its root is still mounted)."""
        standby, live.standby = live.standby, None
        if standby is not None:  # created, never started: its init waits
            await asyncio.to_thread(standby.retire)
        cleanup = live.cleanup
        if cleanup is not None and not cleanup.done():
            with contextlib.suppress(Exception):
                await asyncio.shield(cleanup)
        # The last exit's clean-up has run unless it failed or there was none
        # (never started, or adopted after a daemon restart).
        cleaned = cleanup is not None and not cleanup.cancelled() and cleanup.exception() is None
        try:
            await asyncio.to_thread(self._remove_files, c, cleaned)
        except Exception:  # logged; swept at the next start
            log.exception("removing the files of container %s", c.id[:12])
            return
        with contextlib.suppress(NotFound):
            self.images.meta.delete_lease(f"{LEASE_PREFIX}{c.id}")
        try:
            self.images.meta.get_image(c.image_id)
        except NotFound:
            # Deleted meanwhile (docker rm && docker rmi): its layers stayed for
            # this container's root, and nothing else collects them now.
            await asyncio.to_thread(self.images.prune)

    def _remove_files(self, c: Container, cleaned: bool) -> None:
        """Cleans up (unless the last exit's clean-up already did), then moves the
        container's directory aside: it is deleted in the background (nobody waits
        for a tree delete), and swept at start if the daemon stopped first."""
        if not cleaned:
            self._cleanup_after_exit(c)
        trash = self.root / f"{TRASH_PREFIX}{c.id}"
        try:
            os.rename(c.root, trash)
        except FileNotFoundError:
            return
        threading.Thread(
            target=_rmtree_in_background, args=(trash,), name="rm-container", daemon=True
        ).start()

    # ------------------------------------------------------------------ rename, list

    def rename(self, c: Container, new: str) -> None:
        new = names.validate(new)
        if new == c.name:
            raise InvalidArgument("Renaming a container with the same name as its current name")
        self._check_name_free(new)
        old = c.name
        c.name = new
        try:
            self.store.rename(c)
        except BaseException:
            c.name = old
            raise
        del self._names[old]
        self._names[new] = c.id
        self.publish(c, "rename", oldName="/" + old)

    def list(
        self,
        *,
        all: bool = False,
        limit: int = -1,
        size: bool = False,
        filters: dict[str, list[str]] | None = None,
    ) -> list[dict[str, Any]]:
        from skiff.engine.filters import container_matches

        filters = filters or {}
        items = sorted(self._containers.values(), key=lambda c: c.created, reverse=True)
        if limit > 0 or "status" in filters or "exited" in filters:
            all = True
        out = []
        for c in items:
            if not all and c.state.status not in (RUNNING, PAUSED, RESTARTING):
                continue
            if not container_matches(c, filters, self):
                continue
            entry = c.summary()
            if size:
                entry["SizeRw"] = _du(c.upper)
                entry["SizeRootFs"] = entry["SizeRw"] + self._image_size(c)
            out.append(entry)
            if 0 < limit <= len(out):
                break
        return out

    def _image_size(self, c: Container) -> int:
        try:
            return int(self.images.meta.get_image(c.image_id).size)
        except NotFound:
            return 0

    # ------------------------------------------------------------------ daemon start/stop

    async def restore(self) -> None:
        """At daemon start: load every container, adopt the running ones (their
        monitors still run), record the exits of those that ended meanwhile, apply
        restart policies and ``--rm``."""
        for trash in self.root.glob(f"{TRASH_PREFIX}*"):
            await asyncio.to_thread(_rmtree, trash)
        for c in await asyncio.to_thread(self.store.all):
            self._register(c)
        await asyncio.to_thread(self._sweep_leftovers)
        for c in list(self._containers.values()):
            if c.state.status == CREATED and c.state.monitor_pid:
                init = self._standby_started_meanwhile(c)
                if init:
                    # Its start went through, and the daemon stopped before it
                    # recorded it: it runs, and is adopted as such.
                    c.state.status, c.state.pid, c.has_been_started = RUNNING, init, True
                    c.state.started_at = rfc3339_nano()
                    self.save(c)
                    self._watch(c)
                    self.live(c).health_task = health.start(self, c)
                    log.info("adopted container %s, started as the daemon stopped", c.id[:12])
                    continue
                # It took a standby and the daemon stopped before its start: the
                # start makes it the usual way.
                await asyncio.to_thread(self._stop_leftover, c.id)
                await asyncio.to_thread(self._cleanup_after_exit, c)
                c.state.monitor_pid = c.state.monitor_start = 0
                self.save(c)
            elif c.state.status in (RUNNING, PAUSED):
                if mon.monitor_alive(c.state.monitor_pid, c.id, c.state.monitor_start):
                    self._watch(c)
                    self.live(c).health_task = health.start(self, c)
                    log.info("adopted running container %s", c.id[:12])
                    continue
                await self._handle_exit(c)
            elif c.state.status == REMOVING or (
                c.host_config.get("AutoRemove") and c.state.status == EXITED
            ):
                await self.remove(c, force=True)
            elif c.state.status in (RESTARTING, EXITED) and c.has_been_started:
                # Restart policies apply at daemon start too (always; unless-stopped
                # when not stopped by hand; on-failure after a failure).
                c.state.status = EXITED
                self.save(c)
                if self._should_restart(c):
                    c.state.status = RESTARTING
                    task = asyncio.ensure_future(self._restart_later(c))
                    self.live(c).restart_task = task

    def _standby_started_meanwhile(self, c: Container) -> int:
        """The pid of the init of created container ``c`` if it took a standby
        whose start went through (init runs its process: it is no monitor's copy
        any more) while its monitor lives; else 0."""
        if not mon.monitor_alive(c.state.monitor_pid, c.id, c.state.monitor_start):
            return 0
        init = self._runtime_init(c.id)
        if init <= 0 or mon.parent_of(init) != c.state.monitor_pid or mon.is_monitor(init):
            return 0
        return init

    def _runtime_init(self, cid: str) -> int:
        """The init pid in the runtime's state of container ``cid``; 0 without one."""
        state = Path(self.runtime.root) / cid / "state.json"
        try:
            return int(json.loads(state.read_bytes()).get("pid", 0))
        except (OSError, ValueError, AttributeError):
            return 0

    def _stop_leftover(self, cid: str) -> None:
        """Deletes a container the runtime still has but the daemon no longer
        follows (killing its init), and waits for its monitor to be done."""
        init = self._runtime_init(cid)
        if init <= 0:
            return
        monitor = mon.parent_of(init)
        monitor_fd = mon.pidfd(monitor) if monitor > 1 and mon.is_monitor(monitor) else None
        with contextlib.suppress(SkiffError):
            self.runtime.delete(cid, force=True)
        if monitor_fd is not None:
            select.select([monitor_fd], [], [], sb.RETIRE_TIMEOUT)
            os.close(monitor_fd)

    def _sweep_leftovers(self) -> None:
        """Finishes removals a stopped daemon left half-done: directories and
        leases of containers that are no longer in the store."""
        for entry in self.root.iterdir():
            if entry.name.startswith(TRASH_PREFIX) or entry.name in self._containers:
                continue
            # A standby of a daemon killed meanwhile has its init still waiting.
            self._stop_leftover(entry.name)
            rootfs = entry / "rootfs"
            if os.path.ismount(rootfs):
                with contextlib.suppress(OSError):
                    self.mounter.unmount(rootfs, detach=True)
            _rmtree(self.monitors_root / entry.name[:MONITOR_DIR_LEN])
            trash = self.root / f"{TRASH_PREFIX}{entry.name}"
            with contextlib.suppress(FileNotFoundError):
                os.rename(entry, trash)
                _rmtree(trash)
        orphans = [
            lease
            for lease in self.images.meta.lease_ids(LEASE_PREFIX)
            if lease[len(LEASE_PREFIX) :] not in self._containers
        ]
        for lease in orphans:
            with contextlib.suppress(NotFound):
                self.images.meta.delete_lease(lease)
        if orphans:
            # Their layers may belong to images deleted meanwhile.
            self.images.prune()

    async def shutdown(self, live_restore: bool, timeout: float = 15) -> None:
        """At daemon stop: without live restore, stop every running container (each
        with its own stop timeout, all at once), as dockerd does."""
        for live in self._live.values():
            for task in (live.restart_task, live.health_task):
                if task is not None:
                    task.cancel()
        if not live_restore:
            running = [c for c in self._containers.values() if c.state.status in (RUNNING, PAUSED)]

            async def stop_one(c: Container) -> None:
                try:
                    await self.stop(c)
                except SkiffError as err:
                    log.warning("stopping %s at shutdown: %s", c.id[:12], err.message)
                self.live(c).stopping = False
                c.manually_stopped = False
                self.save(c)

            if running:
                await asyncio.wait_for(asyncio.gather(*(stop_one(c) for c in running)), timeout + 5)
        # Exits being handled and removals finishing their files.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while (pending := [t for t in self._tasks if not t.done()]) and loop.time() < deadline:
            await asyncio.wait(pending, timeout=deadline - loop.time())
        for live in self._live.values():
            fd = self._unwatch(live)
            if fd is not None:
                os.close(fd)
        for c in list(self._containers.values()):
            await self.drop_standby(c)
        await asyncio.to_thread(self.standby.close)
        self.monitor_pool.close()
        self.netns_stock.close()


# ----------------------------------------------------------------------- helpers


def _familiar(ref: str) -> str:
    from skiff.image.reference import looks_like_id, parse_normalized

    if looks_like_id(ref) or ref.startswith("sha256:"):
        return ref
    try:
        return parse_normalized(ref).familiar()
    except SkiffError:
        return ref


def _validate_host_config(hc: dict[str, Any]) -> None:
    policy = hc.get("RestartPolicy") or {}
    name = policy.get("Name") or ""
    if name not in RESTART_POLICIES:
        raise InvalidArgument(f"invalid restart policy: unknown policy '{name}'")
    if hc.get("AutoRemove") and name not in ("", "no"):
        raise InvalidArgument("can't create 'AutoRemove' container with restart policy")
    if policy.get("MaximumRetryCount") and name != "on-failure":
        raise InvalidArgument(
            "invalid restart policy: maximum retry count can only be used with 'on-failure'"
        )
    if int(policy.get("MaximumRetryCount") or 0) < 0:
        raise InvalidArgument("invalid restart policy: maximum retry count cannot be negative")
    mode = hc.get("NetworkMode") or "default"
    if mode not in ("default", "bridge", "none", "host") and not mode.startswith("container:"):
        raise NotFound(f"network {mode} not found")
    mem = int(hc.get("Memory") or 0)
    if mem and mem < 6 * 1024 * 1024:
        raise InvalidArgument("Minimum memory limit allowed is 6MB")
    swap = int(hc.get("MemorySwap") or 0)
    if mem and swap > 0 and swap < mem:
        raise InvalidArgument(
            "Minimum memoryswap limit should be larger than memory limit, see usage"
        )
    if hc.get("NanoCpus") and (hc.get("CpuQuota") or hc.get("CpuPeriod")):
        raise InvalidArgument("Conflicting options: Nano CPUs and CPU Period cannot both be set")
    ocispec.capabilities(hc)
    ocispec.rlimits(hc)
    ocispec.check_mount_targets(hc)


def _merge_config(body: dict[str, Any], image: Any) -> dict[str, Any]:
    """The container's Config: what the client sent, completed from the image's
    config the way dockerd merges them. Nothing of ``image`` (shared between
    creates) is taken without a copy."""
    cfg: dict[str, Any] = {
        "Hostname": body.get("Hostname") or "",
        "Domainname": body.get("Domainname") or "",
        "User": body.get("User") or image.user or "",
        "AttachStdin": bool(body.get("AttachStdin")),
        "AttachStdout": bool(body.get("AttachStdout")),
        "AttachStderr": bool(body.get("AttachStderr")),
        "Tty": bool(body.get("Tty")),
        "OpenStdin": bool(body.get("OpenStdin")),
        "StdinOnce": bool(body.get("StdinOnce")),
        "Image": body["Image"],
        "Volumes": {**_copied(image.volumes), **(body.get("Volumes") or {})} or None,
        "WorkingDir": body.get("WorkingDir") or image.working_dir or "",
        "OnBuild": None,
        "Labels": {**(image.labels or {}), **(body.get("Labels") or {})},
    }
    ports = {**_copied(image.exposed_ports), **(body.get("ExposedPorts") or {})}
    if ports:
        cfg["ExposedPorts"] = ports
    env: dict[str, str] = {}
    order: list[str] = []
    for item in [*(image.env or []), *(body.get("Env") or [])]:
        if not isinstance(item, str):
            raise InvalidArgument(f"invalid environment variable: {item!r}")
        key = item.partition("=")[0]
        if not key:
            raise InvalidArgument(f"invalid environment variable: {item}")
        if key not in env:
            order.append(key)
        env[key] = item
    cfg["Env"] = [env[k] for k in order]
    body_entry = body.get("Entrypoint")
    body_cmd = body.get("Cmd")
    if isinstance(body_entry, str):
        body_entry = [body_entry]
    if isinstance(body_cmd, str):
        body_cmd = [body_cmd]
    if body_entry is not None and body_entry != []:
        cfg["Entrypoint"] = body_entry
        cfg["Cmd"] = body_cmd
    elif body_entry == []:
        cfg["Entrypoint"] = None
        cfg["Cmd"] = body_cmd if body_cmd else _listed(image.cmd)
    else:
        cfg["Entrypoint"] = _listed(image.entrypoint)
        cfg["Cmd"] = body_cmd if body_cmd else _listed(image.cmd)
    stop_signal = body.get("StopSignal") or image.stop_signal
    if stop_signal:
        signal_number(stop_signal)
        cfg["StopSignal"] = stop_signal
    if body.get("StopTimeout") is not None:
        cfg["StopTimeout"] = int(body["StopTimeout"])
    health = body.get("Healthcheck")
    if health is None and image.healthcheck is not None:
        health = copy.deepcopy(image.healthcheck.to_json())
    if health:
        cfg["Healthcheck"] = health
    return cfg


def _but_command(config: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in config.items() if k not in ("Cmd", "Entrypoint")}


def _copied(entries: dict[str, dict[str, Any]] | None) -> dict[str, dict[str, Any]]:
    """A copy of an image's volumes or exposed ports (path or port -> {})."""
    return {k: dict(v) for k, v in (entries or {}).items()}


def _listed(argv: list[str] | None) -> list[str] | None:
    return None if argv is None else list(argv)


#: The host's files a container's /etc files are made from (read again when changed).
HOST_HOSTS = textfiles.HostFile("/etc/hosts")
HOST_RESOLV_CONF = textfiles.HostFile("/etc/resolv.conf")


def _resolv_conf(hc: dict[str, Any], host_net: bool) -> str:
    host = HOST_RESOLV_CONF.read()
    servers = [
        line.split()[1]
        for line in host.splitlines()
        if line.startswith("nameserver") and len(line.split()) > 1
    ]
    if not host_net:
        servers = [s for s in servers if not s.startswith("127.") and s != "::1"]
    if hc.get("Dns"):
        servers = list(hc["Dns"])
    if not servers:
        servers = ["8.8.8.8", "8.8.4.4"]
    search = list(hc.get("DnsSearch") or [])
    if not search:
        for line in host.splitlines():
            if line.startswith(("search", "domain")):
                search = line.split()[1:]
    options = list(hc.get("DnsOptions") or [])
    lines = [f"nameserver {s}" for s in servers]
    if search:
        lines.append("search " + " ".join(search))
    if options:
        lines.append("options " + " ".join(options))
    return "\n".join(lines) + "\n"


def ensure_init_layer(layer: Path) -> None:
    """Makes the shared init layer once (built aside, then renamed into place, so a
    crash never leaves half of one)."""
    if layer.is_dir():
        return
    tmp = layer.with_name(f".{layer.name}.{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(mode=0o755)
    for d in INIT_DIRS:
        (tmp / d).mkdir(mode=0o755)
    for f in INIT_FILES:
        (tmp / f).touch(mode=0o644)
    try:
        os.rename(tmp, layer)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        if not layer.is_dir():
            raise


def _name_anonymous_volumes(config: dict[str, Any], host_config: dict[str, Any]) -> None:
    """Gives every anonymous volume (an image's or ``-v /path``'s ``Volumes``, a
    ``--mount type=volume`` without a source) a name of its own, once, at create:
    its data then stays across restarts, as with dockerd."""
    taken = set()
    for bind in host_config.get("Binds") or []:
        parts = bind.split(":")
        if len(parts) > 1:
            taken.add(parts[1].rstrip("/") or "/")
    mounts = list(host_config.get("Mounts") or [])
    for m in mounts:
        if (m.get("Type") or "volume") == "volume" and not m.get("Source"):
            m["Source"] = secrets.token_hex(32)
        taken.add(str(m.get("Target") or "").rstrip("/") or "/")
    for path in config.get("Volumes") or {}:
        target = path.rstrip("/") or "/"
        if target not in taken:
            mounts.append({"Type": "volume", "Source": secrets.token_hex(32), "Target": path})
            taken.add(target)
    if mounts:
        host_config["Mounts"] = mounts


def _log_cleanup_failure(fut: asyncio.Future[None]) -> None:
    if not fut.cancelled() and fut.exception() is not None:
        log.warning("clean-up after a container's exit failed: %s", fut.exception())


def _rmtree_in_background(path: Path) -> None:
    lower_priority()
    _rmtree(path)


def _rmtree(path: Path) -> None:
    # Natively, without the GIL: a big writable layer must not stall the daemon.
    try:
        _native.remove_tree(path)
    except OSError:
        shutil.rmtree(path, ignore_errors=True)


def _du(path: Path) -> int:
    total = 0
    for dirpath, _, filenames in os.walk(path):
        for name in filenames:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(dirpath, name)).st_size
    return total
