"""Starting a container's monitor (``skiff-monitor``, rust/runtime/src/bin) and
following it: the monitor runs the runtime's ``create``, owns the container's stdio
and log, and writes an exit file when the container's init ends.

Files under ``<exec root>/m/<id prefix>/``: ``attach.sock`` (the attach protocol, see
the monitor's main.rs), ``exit.json`` (written when init exits), ``runtime.log``
(with a runtime other than skiff-runtime, ``init.pid`` too; skiff-runtime's create
runs in the monitor, which has the pid at once). The daemon learns that a container
ended from the monitor's sync pipe, which the monitor holds while the container runs:
the exit record (one line, acted on once whole) comes there, then its end, before the
exit file and the monitor's own clean-up (the runtime's delete); a monitor adopted
after a daemon restart is followed through a pidfd instead (it exits after that
clean-up), and its exit file read.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from skiff import _native
from skiff.engine.forkserver import ForkServer
from skiff.engine.stock import FdStock
from skiff.errors import SkiffError
from skiff.runtime.binary import find_runtime

log = logging.getLogger(__name__)


class StartFailed(SkiffError):
    """The runtime could not create the container (bad command, mount, ...)."""


class NoMonitorReady(StartFailed):
    """No monitor started ahead of need is ready just now (for work done ahead of
    need, which uses only those)."""


def find_monitor() -> Path:
    runtime = find_runtime()
    beside = runtime.parent / "skiff-monitor"
    if beside.exists():
        return beside
    found = shutil.which("skiff-monitor")
    if found is None:
        raise StartFailed("skiff-monitor not found (run scripts/setup)")
    return Path(found)


@dataclass(frozen=True)
class MonitorFiles:
    dir: Path

    @property
    def socket(self) -> Path:
        return self.dir / "attach.sock"

    @property
    def exit_file(self) -> Path:
        return self.dir / "exit.json"


@dataclass(frozen=True)
class Started:
    pid: int
    monitor_pid: int
    #: the read end of the sync pipe (the caller's to close): the exit record
    #: comes there, then its end, once init exited
    exit_fd: int = -1
    #: what was read past the sync line (a container that ended at once)
    exit_data: bytes = b""
    #: the monitor's start time (see :func:`start_time`), as it sent it; 0 if not
    monitor_start: int = 0


def spawn(
    *,
    container_id: str,
    bundle: Path,
    files: MonitorFiles,
    runtime: Path,
    runtime_root: str,
    log: Path,
    terminal: bool,
    stdin: bool,
    log_max_size: int = 0,
    log_max_files: int = 1,
    monitor: Path | None = None,
    start: bool = False,
    pool: MonitorPool | None = None,
    reserved: Reserved | None = None,
    cgroup_mounts: Path | None = None,
) -> Started:
    """Starts the monitor (which runs the runtime's ``create``) and waits until the
    container exists, blocked before its user process — or, with ``start``, running
    it (the monitor runs the runtime's ``start`` too: one process less for callers
    with nothing to attach first); raises StartFailed with the runtime's message
    otherwise. With ``reserved`` (a monitor taken from ``pool``, given its command
    line here; the caller closes it when spawn fails before that) the container is
    made ahead of need by that monitor, and no other (work done ahead of need, at a
    low priority, must not start one; NoMonitorReady when it is gone): the monitor's
    ``--standby``, whose process comes with :func:`start_standby`, which gives the
    monitor and init their nice value. ``cgroup_mounts``: see
    :func:`write_cgroup_mounts` (a pooled monitor has its own)."""
    _native.remove_tree(files.dir)
    files.dir.mkdir(parents=True, mode=0o700)
    binary = str(monitor or find_monitor())
    argv = [
        binary,
        "--id",
        container_id,
        "--bundle",
        str(bundle),
        "--runtime",
        str(runtime),
        "--runtime-root",
        runtime_root,
        "--log",
        str(log),
        "--exit-file",
        str(files.exit_file),
        "--socket",
        str(files.socket),
        # The monitor deletes the container from the runtime when it ends: the
        # daemon has one call less to make, and it happens even while the daemon is
        # down.
        "--delete-on-exit",
        "--sync-until-exit",
    ]
    if start:
        argv.append("--start")
    if reserved is not None:
        argv.append("--standby")
    if terminal:
        argv.append("--terminal")
    if stdin:
        argv.append("--stdin")
    if log_max_size > 0:
        argv += ["--log-max-size", str(log_max_size), "--log-max-files", str(max(1, log_max_files))]
    err_file = files.dir / "monitor.err"
    pid = 0
    if reserved is not None:
        try:
            r = reserved.give(argv[1:])
        except NoMonitorReady:
            _native.remove_tree(files.dir)
            raise
    elif pool is not None:
        r = pool.hand_over(argv[1:])
        if r < 0:
            r = pool.fresh(argv[1:])
    else:
        r = -1
    w = -1
    try:
        if r < 0:
            r, w = os.pipe()
            argv += ["--sync-fd", "1"]
            if cgroup_mounts:
                argv += ["--cgroup-mounts", str(cgroup_mounts)]
            pid = _spawn(argv, w, err_file)
            os.close(w)
            w = -1
        # One line; with a pid the pipe stays open until the container exits, and
        # the exit record may already follow.
        data = b""
        while b"\n" not in data and (chunk := os.read(r, 4096)):
            data += chunk
        data, _, rest = data.partition(b"\n")
        status = 0
        if pid:
            # The first process left at once (the monitor daemonizes): reap it.
            _, status = os.waitpid(pid, 0)
        line = data.decode(errors="replace").strip()
        try:
            answer: dict[str, Any] = json.loads(line) if line else {}
        except ValueError:
            answer = {"error": line}
        if "pid" in answer:
            started = Started(
                int(answer["pid"]),
                int(answer.get("monitor_pid", 0)),
                r,
                rest,
                int(answer.get("monitor_start", 0)),
            )
            r = -1
            return started
    finally:
        if r >= 0:
            os.close(r)
        if w >= 0:
            os.close(w)
    try:
        err = err_file.read_text(errors="replace").strip()
    except OSError:
        err = ""
    message = str(answer.get("error") or err)
    if not message and not pid:
        message = "skiff-monitor ended without an answer"
    raise StartFailed(
        message or f"skiff-monitor exited with status {os.waitstatus_to_exitcode(status)}"
    )


def write_cgroup_mounts(path: Path) -> Path | None:
    """Writes the cgroup and cgroup2 lines of this process's mountinfo to ``path``
    (atomically) for monitors (``--cgroup-mounts``): a monitor reading them there
    does not read mountinfo, which lists every running container's root. A monitor
    checks they still hold and reads mountinfo when they do not. None if either
    file cannot be read or written."""
    try:
        with open("/proc/self/mountinfo", "rb") as f:
            lines = [
                line
                for line in f
                if line.partition(b" - ")[2].split(b" ", 1)[0] in (b"cgroup", b"cgroup2")
            ]
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(b"".join(lines))
        tmp.replace(path)
    except OSError as err:
        log.warning("cannot write %s: %s", path, err)
        return None
    return path


class MonitorPool:
    """Monitors started ahead of need (``skiff-monitor --wait-args``, see its
    main.rs): a container start hands one its command line over its sync socket
    instead of starting a process and waiting for it to daemonize. An idle monitor
    leaves by itself when its socket closes: at :meth:`close`, or with the daemon.

    Monitors come from fork servers (forkserver.py): one for those made ahead of
    need (by the pool's thread, at a low priority), one for those a start needs now
    (:meth:`fresh`: no start waits behind the low-priority thread); a monitor is
    started (executed) as before when a server cannot make one."""

    def __init__(
        self,
        size: int,
        monitor: Path | None = None,
        cgroup_parent: str | None = None,
        cgroup_mounts: Path | None = None,
    ) -> None:
        self._monitor = monitor
        self._cgroup_mounts = cgroup_mounts
        # Each makes a spare cgroup there while it waits (cgroup v1: the runtime
        # renames it into place instead of making ~10 directories).
        self._cgroup_parent = cgroup_parent
        # Started at a low priority, a monitor takes the daemon's when used.
        self._nice = os.getpriority(os.PRIO_PROCESS, 0)
        self._stock = FdStock(size, self._start_one, "monitor-pool")
        self._ahead = ForkServer(self._server_argv)
        self._now = ForkServer(self._server_argv)

    def take(self) -> int:
        """An idle monitor's sync socket (the caller's: give it a command line with
        :func:`give_args`, or close it), or -1 when none is ready."""
        return self._stock.take()

    def hand_over(self, args: list[str]) -> int:
        """Gives ``args`` to an idle monitor; returns its sync socket (the
        caller's, to read the sync line from), or -1 when none is ready."""
        while (fd := self.take()) >= 0:
            if give_args(fd, args):
                return fd
        return -1

    def fresh(self, args: list[str]) -> int:
        """Like :meth:`hand_over`, to a monitor made now for it by a fork server
        (not one of the pool's); -1 when none could be made."""
        fd = self._now.monitor(background=False)
        if fd >= 0 and give_args(fd, args):
            return fd
        return -1

    def close(self) -> None:
        self._stock.close()
        self._ahead.close()
        self._now.close()

    def _wait_args_argv(self) -> list[str]:
        monitor = str(self._monitor or find_monitor())
        argv = [monitor, "--wait-args", "--nice", str(self._nice)]
        if self._cgroup_parent:
            argv += ["--spare-cgroup", self._cgroup_parent]
        if self._cgroup_mounts:
            argv += ["--cgroup-mounts", str(self._cgroup_mounts)]
        return argv

    def _server_argv(self) -> list[str]:
        return [*self._wait_args_argv(), "--fork-server"]

    def _start_one(self) -> int:
        fd = self._ahead.monitor(background=True)
        if fd >= 0:
            return fd
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        with ours, theirs:
            argv = [*self._wait_args_argv(), "--sync-fd", "1"]
            pid = _spawn(argv, theirs.fileno(), Path(os.devnull))
            # The first process leaves at once (the monitor daemonizes).
            _, status = os.waitpid(pid, 0)
            if status != 0:
                raise StartFailed(f"skiff-monitor exited with status {status}")
            return ours.detach()


class Reserved:
    """A monitor taken from the pool for one container (its sync socket), with one
    owner at a time: :meth:`give` hands it its command line and the socket to the
    caller; until then :meth:`close` (or the end of a ``with`` block) lets it go
    unused (it leaves)."""

    def __init__(self, fd: int) -> None:
        self._fd = fd

    def give(self, args: list[str]) -> int:
        """Gives the monitor ``args``; its sync socket, now the caller's.
        NoMonitorReady when the monitor is gone (or was given already)."""
        fd, self._fd = self._fd, -1
        if fd < 0 or not give_args(fd, args):
            raise NoMonitorReady("the monitor taken for it is gone")
        return fd

    def close(self) -> None:
        fd, self._fd = self._fd, -1
        if fd >= 0:
            os.close(fd)

    def __enter__(self) -> Reserved:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def give_args(fd: int, args: list[str]) -> bool:
    """Gives an idle monitor (its sync socket ``fd``) its command line; False (and
    ``fd`` closed) when that monitor is gone."""
    payload = b"".join(os.fsencode(a) + b"\0" for a in args)
    try:
        os.write(fd, b"%d\n" % len(payload) + payload)  # far below a socket buffer
        return True
    except OSError:
        os.close(fd)
        return False


def _spawn(argv: list[str], sync_fd: int, err_file: Path) -> int:
    """Starts the monitor without holding the GIL (``Popen`` holds it until the
    child has exec'd), with ``sync_fd`` as its stdout (``argv`` says ``--sync-fd 1``:
    the monitor moves it off the stdio descriptors at once). Nothing is made
    inheritable for it, so a process started at the same moment by another thread,
    or by uvloop (which does not close a child's descriptors), gets no copy of the
    sync pipe, which would keep the container's exit from being seen."""
    return _native.spawn_detached(argv, sync_fd, err_file)


async def start_container(files: MonitorFiles) -> None:
    """Has the monitor run the runtime's ``start`` (its ``start`` command): the
    process runs once this returns; StartFailed with the runtime's message else."""
    import asyncio

    loop = asyncio.get_running_loop()
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.setblocking(False)
    answer = b""
    try:
        try:
            await loop.sock_connect(conn, str(files.socket))
        except OSError as err:
            raise StartFailed(f"the container's monitor is gone: {err.strerror}") from None
        try:
            await loop.sock_sendall(conn, b"start\n")
            while b"\n" not in answer and (chunk := await loop.sock_recv(conn, 1024)):
                answer += chunk
        except OSError:
            pass  # hung up: told below
    finally:
        conn.close()
    text = answer.decode(errors="replace").strip()
    if text != "ok":
        raise StartFailed(text.removeprefix("error ").strip() or "the monitor hung up")


#: How long the monitor of a standby may take to hand over init's sync socket.
HAND_OVER_TIMEOUT = 10.0


def start_socket(files: MonitorFiles) -> socket.socket:
    """Init's sync socket of a container made ahead of need (the monitor's
    ``start-socket``; blocking, for a thread): whoever holds it starts the
    container (see :func:`start_standby`). Non-blocking and close-on-exec;
    StartFailed when the monitor refuses or is gone."""
    fds: list[int] = []
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.settimeout(HAND_OVER_TIMEOUT)
            conn.connect(str(files.socket))
            conn.sendall(b"start-socket\n")
            msg, fds, _, _ = socket.recv_fds(conn, 1024, 1, socket.MSG_CMSG_CLOEXEC)
    except OSError as err:
        raise StartFailed(f"the container's monitor is gone: {err}") from None
    if msg != b"ok\n" or len(fds) != 1:
        for fd in fds:
            os.close(fd)
        text = msg.decode(errors="replace").strip().removeprefix("error ").strip()
        raise StartFailed(text or "the monitor hung up")
    sync = socket.socket(fileno=fds[0])
    sync.setblocking(False)
    return sync


async def start_standby(sync: socket.socket, process: bytes, pids: list[int], nice: int) -> None:
    """Starts a container made ahead of need through init's sync socket
    (:func:`start_socket`; closed here): gives its init and monitor (``pids``)
    the nice value ``nice`` (they were made at a low one), sends init
    ``process`` (JSON: the process and hostname) and reads its answer. The process
    runs once this returns; StartFailed with init's message else."""
    import asyncio

    loop = asyncio.get_running_loop()
    for pid in pids:
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, pid, nice)
    message = b"start" + process
    try:
        try:
            sync.send(message)  # far below the socket's buffer: all at once
        except BlockingIOError:
            await loop.sock_sendall(sync, message)
        try:
            answer = await loop.sock_recv(sync, 65536)
        except OSError:
            answer = b""
    except OSError as err:
        raise StartFailed(f"the container's init is gone: {err.strerror}") from None
    finally:
        sync.close()
    if answer == b"ready":
        return
    if not answer:
        raise StartFailed("init exited before start")
    # Worded as the runtime words it, on one line as the monitor passed it on.
    if answer.startswith(b"E"):
        raise StartFailed(
            "container init: " + " ".join(answer[1:].decode(errors="replace").split())
        )
    raise StartFailed(f"container init: unexpected message {answer.decode(errors='replace')!r}")


def read_exit(files: MonitorFiles) -> dict[str, Any] | None:
    """The monitor's exit record, or None when it wrote none."""
    try:
        return parse_exit(files.exit_file.read_bytes())
    except FileNotFoundError:
        return None


def parse_exit(data: bytes) -> dict[str, Any] | None:
    """An exit record (one JSON line, see the monitor's main.rs), or None."""
    try:
        record = json.loads(data)
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


def monitor_alive(pid: int, container_id: str, start: int = 0) -> bool:
    """Whether ``pid`` is still this container's monitor (not a reused pid): a
    skiff-monitor started at ``start`` (see :func:`start_time`); without it (records
    of older daemons), one whose command line names the container."""
    if pid <= 0:
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return False
    if not cmdline or not cmdline[0].endswith(b"skiff-monitor"):
        return False
    if start:
        return start_time(pid) == start
    return container_id.encode() in cmdline


def _stat_field(pid: int, n: int) -> int:
    """Field ``n`` of /proc/PID/stat (see stat(5), counted from 1) as a number; 0
    when the process is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return 0
    # The first field after the command (which may hold spaces) is the third.
    fields = stat[stat.rfind(b")") + 2 :].split()
    return int(fields[n - 3]) if len(fields) > n - 3 else 0


def start_time(pid: int) -> int:
    """When ``pid`` started (clock ticks since boot); 0 when it is gone."""
    return _stat_field(pid, 22)


def parent_of(pid: int) -> int:
    """The parent of ``pid``; 0 when it is gone."""
    return _stat_field(pid, 4)


def is_monitor(pid: int) -> bool:
    """Whether ``pid`` is a skiff-monitor."""
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip() == "skiff-monitor"
    except OSError:
        return False


def pidfd(pid: int) -> int | None:
    """A pidfd for ``pid`` (readable once it exits), or None when it is gone."""
    try:
        return os.pidfd_open(pid)
    except ProcessLookupError:
        return None


def remove_files(files: MonitorFiles) -> None:
    with contextlib.suppress(FileNotFoundError):
        shutil.rmtree(files.dir)
