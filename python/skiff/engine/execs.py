"""Exec sessions: ``docker exec`` — another process in a running container.

An exec is created (``POST /containers/{id}/exec``: the command and its settings are
checked and kept), then started once (``POST /exec/{id}/start``), then inspected for
its exit code. The daemon runs each started exec as its own child: ``skiff-runtime
exec --process FILE [--console-socket SOCK] ID`` in the foreground, as an asyncio
subprocess, so the runtime's exit status is the process's. Without a tty the
process's stdio are pipes to the daemon (framed onto the API client's connection);
with one, the runtime hands the pty master to the daemon over the console socket
(SCM_RIGHTS, runc's protocol) and the daemon carries raw bytes.

The process is the container's own (its ``config.json`` in the container's directory:
rlimits, no-new-privileges, OOM score, seccomp through the runtime) with Docker's
exec overrides: args, env (the container's, ``TERM`` for a tty, the exec's ``Env``),
working dir, user (looked up in the container's passwd and group, as at create),
capabilities (all of them for ``Privileged``).

A session's files live in ``<exec root>/x/<first 16 characters of its id>/``:
``process.json``, ``runtime.log`` (the runtime's JSON log: an error line there means
the process could not be started), ``pid`` and ``console.sock``; the directory goes
when the session ends. Sessions are in memory only: an exec does not outlive the
daemon's knowledge of it, and ended sessions are dropped after :data:`KEEP_ENDED`
seconds (dockerd keeps them 5 to 10 minutes).

When the container exits, its running execs end with it: the daemon kills them.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import errno
import fcntl
import json
import logging
import os
import secrets
import shutil
import signal
import socket
import struct
import termios
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from skiff.engine import ocispec
from skiff.engine.container import PAUSED, RESTARTING, RUNNING, Container
from skiff.engine.containers import start_error_code
from skiff.engine.fdio import send, wait_fd, write_all
from skiff.engine.logs import frame
from skiff.errors import Conflict, InvalidArgument, NotFound, SkiffError

if TYPE_CHECKING:
    from skiff.engine.containers import ContainerService

log = logging.getLogger("skiff.engine.execs")

CHUNK = 64 * 1024
#: Ended sessions are forgotten after this many seconds.
KEEP_ENDED = 600.0
#: After the process exits, how long its output may still take to drain (a
#: background child that keeps the pipe or the pty open does not hold the client).
DRAIN_GRACE = 1.0
#: docker's default detach sequence for a tty: ctrl-p, ctrl-q.
DEFAULT_DETACH_KEYS = b"\x10\x11"
STDOUT, STDERR = 1, 2


class ExecStartFailed(SkiffError):
    """The runtime could not start the exec's process (exit code 126, 127 or 128)."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def parse_detach_keys(text: str) -> bytes:
    """docker's key sequence notation: "ctrl-p,ctrl-q", "ctrl-a,x"."""
    out = bytearray()
    for part in text.split(","):
        key = part.strip()
        if len(key) == 1:
            out.append(ord(key))
            continue
        lowered = key.lower()
        if lowered.startswith("ctrl-") and len(key) == 6:
            ch = lowered[5]
            if "a" <= ch <= "z":
                out.append(ord(ch) - ord("a") + 1)
                continue
            specials = {"@": 0, "[": 27, "\\": 28, "]": 29, "^": 30, "_": 31}
            if ch in specials:
                out.append(specials[ch])
                continue
        raise InvalidArgument(f"Invalid escape keys ({text}) provided")
    return bytes(out)


def merge_env(base: list[str], extra: list[str]) -> list[str]:
    """docker's ReplaceOrAppendEnvValues: ``K=V`` replaces or appends K; a bare ``K``
    removes it."""
    out = list(base)
    for item in extra:
        key, eq, _ = item.partition("=")
        index = next((i for i, e in enumerate(out) if e.partition("=")[0] == key), None)
        if not eq:
            if index is not None:
                del out[index]
            continue
        if index is None:
            out.append(item)
        else:
            out[index] = item
    return out


class _Escape:
    """Watches a tty's input for the detach sequence; what is held back while it may
    still be the start of the sequence is passed on once it is not."""

    def __init__(self, keys: bytes) -> None:
        self.keys = keys
        self.held = b""

    def feed(self, data: bytes) -> tuple[bytes, bool]:
        out = bytearray()
        for byte in data:
            if byte == self.keys[len(self.held)]:
                self.held += bytes([byte])
                if len(self.held) == len(self.keys):
                    self.held = b""
                    return bytes(out), True
                continue
            out += self.held
            self.held = b""
            if byte == self.keys[0]:
                self.held = bytes([byte])
            else:
                out.append(byte)
        return bytes(out), False


@dataclass
class ExecSession:
    id: str
    container: Container
    entrypoint: str
    args: list[str]
    tty: bool
    open_stdin: bool
    open_stdout: bool
    open_stderr: bool
    privileged: bool
    user: str
    env: list[str]
    working_dir: str
    detach_keys: bytes
    detach_keys_given: bool
    console_size: tuple[int, int] | None
    running: bool = False
    started: bool = False  # a start was accepted (it runs once)
    exit_code: int | None = None
    pid: int = 0
    ended_at: float = 0.0
    proc: asyncio.subprocess.Process | None = None
    pidfd: int | None = None  # the process's, once it runs
    master: int | None = None  # the pty master, with a tty
    input_task: asyncio.Future[None] | None = None
    ready: asyncio.Event = field(default_factory=asyncio.Event)  # started or failed
    done: asyncio.Event = field(default_factory=asyncio.Event)
    #: where output goes: the attached client's writer (None: discarded)
    sink: asyncio.StreamWriter | None = None
    frame_output: bool = True

    @property
    def command_text(self) -> str:
        return self.entrypoint + " " + " ".join(self.args)

    def inspect(self) -> dict[str, Any]:
        return {
            "ID": self.id,
            "Running": self.running,
            "ExitCode": self.exit_code,
            "ProcessConfig": {
                "tty": self.tty,
                "entrypoint": self.entrypoint,
                "arguments": list(self.args),
                "privileged": self.privileged,
                "user": self.user,
            },
            "OpenStdin": self.open_stdin,
            "OpenStderr": self.open_stderr,
            "OpenStdout": self.open_stdout,
            "CanRemove": False,
            "ContainerID": self.container.id,
            "DetachKeys": base64.b64encode(self.detach_keys if self.detach_keys_given else b"")
            .decode()
            .strip(),
            "Pid": self.pid,
        }


def _container_gone_check(svc: ContainerService, c: Container) -> bool:
    try:
        return svc.get(c.id) is not c
    except NotFound:
        return True


class ExecService:
    def __init__(self, containers: ContainerService) -> None:
        self.containers = containers
        self.root = containers.monitors_root.parent / "x"
        self._sessions: dict[str, ExecSession] = {}
        self._tasks: set[asyncio.Future[Any]] = set()

    # ------------------------------------------------------------------ lookup

    def get(self, exec_id: str) -> ExecSession:
        self._prune()
        s = self._sessions.get(exec_id)
        if s is None or _container_gone_check(self.containers, s.container):
            raise NotFound(f"No such exec instance: {exec_id}")
        return s

    def _prune(self) -> None:
        now = time.monotonic()
        for sid, s in list(self._sessions.items()):
            if s.running:
                continue
            gone = _container_gone_check(self.containers, s.container)
            if gone or (s.exit_code is not None and now - s.ended_at > KEEP_ENDED):
                del self._sessions[sid]

    def _spawn(self, coro: Awaitable[Any]) -> asyncio.Future[Any]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _publish(self, s: ExecSession, action: str, **extra: str) -> None:
        # The container's own event attributes (image, name, labels) plus ours.
        self.containers.publish(s.container, action, execID=s.id, **extra)

    @staticmethod
    def check_running(c: Container, ref: str) -> None:
        """dockerd's errors for an exec in a container that is not running."""
        if c.state.status == PAUSED:
            raise Conflict(f"Container {ref} is paused, unpause the container before exec")
        if c.state.status == RESTARTING:
            raise Conflict(f"Container {c.id} is restarting, wait until the container is running")
        if c.state.status != RUNNING or not c.state.pid:
            raise Conflict(f"container {c.id} is not running")

    # ------------------------------------------------------------------ create

    def create(self, ref: str, body: Any) -> ExecSession:
        if not isinstance(body, dict):
            raise InvalidArgument("No exec command specified")
        cmd = body.get("Cmd")
        if isinstance(cmd, str):
            cmd = [cmd]
        if not cmd:
            raise InvalidArgument("No exec command specified")
        if not isinstance(cmd, list) or not all(isinstance(a, str) for a in cmd):
            raise InvalidArgument("Cmd must be a list of strings")
        env = body.get("Env") or []
        if not isinstance(env, list) or not all(isinstance(e, str) for e in env):
            raise InvalidArgument("Env must be a list of strings")
        c = self.containers.get(ref)
        self.check_running(c, ref)
        user = body.get("User") or ""
        if not isinstance(user, str):
            raise InvalidArgument("User must be a string")
        if user:
            # Looked up now for an early error, as dockerd does (and again at start).
            try:
                db = ocispec.read_user_db(c.rootfs)
                ocispec.resolve_user(db, user, c.host_config.get("GroupAdd") or [])
            except NotFound as err:
                raise InvalidArgument(err.message) from None
        keys_text = body.get("DetachKeys") or ""
        keys = parse_detach_keys(keys_text) if keys_text else DEFAULT_DETACH_KEYS
        size = _console_size(body.get("ConsoleSize"))
        s = ExecSession(
            id=secrets.token_hex(32),
            container=c,
            entrypoint=cmd[0],
            args=list(cmd[1:]),
            tty=bool(body.get("Tty")),
            open_stdin=bool(body.get("AttachStdin")),
            open_stdout=bool(body.get("AttachStdout")),
            open_stderr=bool(body.get("AttachStderr")),
            privileged=bool(body.get("Privileged")),
            user=user or str(c.config.get("User") or ""),
            env=list(env),
            working_dir=str(body.get("WorkingDir") or c.config.get("WorkingDir") or ""),
            detach_keys=keys,
            detach_keys_given=bool(keys_text),
            console_size=size,
        )
        self._prune()
        self._sessions[s.id] = s
        c.exec_ids.append(s.id)
        self._publish(s, "exec_create: " + s.command_text)
        return s

    # ------------------------------------------------------------------ start

    def begin(self, s: ExecSession) -> None:
        """Checks that ``s`` may start and marks it started (before the connection is
        hijacked, so that errors are still plain HTTP answers)."""
        if _container_gone_check(self.containers, s.container):
            raise NotFound(f"No such container: {s.id}")
        self.check_running(s.container, s.container.id)
        if s.exit_code is not None:
            raise Conflict(f"exec command {s.id} has already run")
        if s.started:
            raise Conflict(f"exec command {s.id} is already running")
        s.started = True
        s.running = True

    async def start_detached(self, s: ExecSession, console_size: tuple[int, int] | None) -> None:
        """Starts the process with no client; returns once it runs (or raises why it
        could not)."""
        try:
            await self._launch(s, console_size)
        except ExecStartFailed as err:
            if err.exit_code in (126, 127):
                raise InvalidArgument(err.message) from None
            raise
        self._spawn(self._follow(s))

    async def run_attached(
        self,
        s: ExecSession,
        client: tuple[asyncio.StreamReader, asyncio.StreamWriter],
        *,
        framed: bool,
        console_size: tuple[int, int] | None,
    ) -> None:
        """Runs the process with the hijacked client attached; returns when it ended
        (its exit code recorded), or when the client detached with the key sequence."""
        reader, writer = client
        s.frame_output = framed
        s.sink = writer
        try:
            await self._launch(s, console_size)
        except ExecStartFailed as err:
            # dockerd writes the error into the stream, as stdout.
            text = f"{err.message}\r\n".encode()
            with contextlib.suppress(ConnectionError, OSError):
                await send(writer, frame(STDOUT, text) if framed else text)
            return
        follow = self._spawn(self._follow(s))
        detached = asyncio.Event()
        if s.open_stdin:
            s.input_task = asyncio.ensure_future(self._pump_stdin(s, reader, detached))
        waiters = [follow, asyncio.ensure_future(detached.wait())]
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (s.input_task, waiters[1]):
                if task is not None and not task.done():
                    task.cancel()
            if not follow.done():
                # Detached, or this connection's task is being cancelled: the
                # process carries on, its output goes nowhere.
                s.sink = None
                if detached.is_set():
                    self._publish(s, "exec_detach")
        with contextlib.suppress(ConnectionError, OSError):
            await writer.drain()

    async def _pump_stdin(
        self, s: ExecSession, reader: asyncio.StreamReader, detached: asyncio.Event
    ) -> None:
        escape = _Escape(s.detach_keys) if s.tty and s.detach_keys else None
        proc = s.proc
        assert proc is not None
        try:
            while data := await reader.read(CHUNK):
                if escape is not None:
                    data, detach = escape.feed(data)
                    if data:
                        await self._write_input(s, data)
                    if detach:
                        detached.set()
                        return
                    continue
                await self._write_input(s, data)
        except (ConnectionError, OSError):
            pass
        # The client half-closed (or went away): end the process's stdin.
        if s.master is None and proc.stdin is not None:
            proc.stdin.close()

    async def _write_input(self, s: ExecSession, data: bytes) -> None:
        if s.master is not None:
            await write_all(s.master, data)
            return
        proc = s.proc
        if proc is not None and proc.stdin is not None:
            await send(proc.stdin, data)

    async def _send(self, s: ExecSession, stream: int, data: bytes) -> None:
        writer = s.sink
        if writer is None:
            return
        try:
            await send(writer, frame(stream, data) if s.frame_output else data)
        except (ConnectionError, OSError):
            # The client went away; the output is drained to nowhere from now on.
            s.sink = None

    # ------------------------------------------------------------------ the process

    def _dir(self, s: ExecSession) -> Path:
        return self.root / s.id[:16]

    async def _launch(self, s: ExecSession, console_size: tuple[int, int] | None) -> None:
        """Runs the runtime for ``s`` and waits until its process runs; raises
        ExecStartFailed (with the exit code recorded) when it cannot."""
        c = s.container
        self._publish(s, "exec_start: " + s.command_text)
        try:
            try:
                self.check_running(c, c.id)
                process = await asyncio.to_thread(self._process_spec, s, console_size)
                await self._spawn_runtime(s, process)
            except ExecStartFailed:
                raise
            except SkiffError as err:
                raise ExecStartFailed(err.message, 126) from None
            except OSError as err:
                raise ExecStartFailed(f"exec failed: {err}", 126) from None
        except ExecStartFailed as err:
            await self._kill_runtime(s)
            self._release(s)
            self._end(s, err.exit_code)
            self._cleanup(s)
            raise
        except asyncio.CancelledError:
            # The client's connection went away (or the daemon stops) mid-start:
            # what was started is still followed to its end and reaped.
            if s.proc is not None:
                self._spawn(self._follow(s))
            else:
                self._end(s, 126)
                self._cleanup(s)
            raise
        finally:
            s.ready.set()

    def _process_spec(self, s: ExecSession, console_size: tuple[int, int] | None) -> dict[str, Any]:
        """The container's own process (its config.json) with the exec's overrides."""
        c = s.container
        try:
            spec = json.loads((c.root / "config.json").read_text())
        except (OSError, ValueError) as err:
            raise Conflict(f"container {c.id} has no runtime config: {err}") from None
        base: dict[str, Any] = dict(spec.get("process") or {})
        hc = c.host_config
        db = ocispec.read_user_db(c.rootfs)
        try:
            user = ocispec.resolve_user(db, s.user, hc.get("GroupAdd") or [])
        except NotFound as err:
            raise ExecStartFailed(err.message, 126) from None
        env = self._env(s, list(base.get("env") or []), db, user["uid"])
        caps = ocispec.host_capabilities() if s.privileged else ocispec.capabilities(hc)
        process = dict(base)
        process.pop("consoleSize", None)
        process.update(
            {
                "terminal": s.tty,
                "user": user,
                "args": [s.entrypoint, *s.args],
                "env": env,
                "cwd": s.working_dir or "/",
                "capabilities": {
                    "bounding": caps,
                    "effective": caps if user["uid"] == 0 else [],
                    "permitted": caps if user["uid"] == 0 else [],
                },
            }
        )
        size = console_size or s.console_size
        if s.tty and size and size[0] and size[1]:
            process["consoleSize"] = {"height": size[0], "width": size[1]}
        return process

    def _env(self, s: ExecSession, base_env: list[str], db: ocispec.UserDb, uid: int) -> list[str]:
        """The container's environment as the daemon made it for init (PATH,
        HOSTNAME, the config's Env), with TERM only for a tty exec, then the exec's
        own Env; HOME for the exec's user unless set."""
        c = s.container
        configured = {e.partition("=")[0] for e in c.config.get("Env") or []}
        env = [
            e
            for e in base_env
            if e.partition("=")[0] not in ("TERM", "HOME") or e.partition("=")[0] in configured
        ]
        keys = {e.partition("=")[0] for e in env}
        if s.tty and "TERM" not in keys:
            env.append("TERM=xterm")
        env = merge_env(env, s.env)
        if not any(e.partition("=")[0] == "HOME" for e in env):
            env.append(f"HOME={ocispec.home_of(db, uid)}")
        return env

    async def _spawn_runtime(self, s: ExecSession, process: dict[str, Any]) -> None:
        c = s.container
        rt = self.containers.runtime
        d = self._dir(s)
        await asyncio.to_thread(_make_dir, d)
        (d / "process.json").write_text(json.dumps(process))
        argv = [
            str(rt.binary),
            "--root",
            rt.root,
            "--log",
            str(d / "runtime.log"),
            "--log-format",
            "json",
            "exec",
            "--process",
            str(d / "process.json"),
            "--pid-file",
            str(d / "pid"),
        ]
        console: socket.socket | None = None
        if s.tty:
            console = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            console.bind(str(d / "console.sock"))
            console.listen(1)
            console.setblocking(False)
            argv += ["--console-socket", str(d / "console.sock")]
            stdio: dict[str, Any] = {
                "stdin": asyncio.subprocess.DEVNULL,
                "stdout": asyncio.subprocess.DEVNULL,
                "stderr": asyncio.subprocess.DEVNULL,
            }
        else:
            pipe, null = asyncio.subprocess.PIPE, asyncio.subprocess.DEVNULL
            stdio = {
                "stdin": pipe if s.open_stdin and s.sink is not None else null,
                "stdout": pipe if s.open_stdout and s.sink is not None else null,
                "stderr": pipe if s.open_stderr and s.sink is not None else null,
            }
        argv.append(c.id)
        try:
            s.proc = await asyncio.create_subprocess_exec(*argv, **stdio)
            if console is not None:
                s.master = await self._receive_master(s, console)
        finally:
            if console is not None:
                console.close()
        await self._wait_started(s)

    async def _receive_master(self, s: ExecSession, console: socket.socket) -> int:
        """Accepts the runtime's connection on the console socket and takes the pty
        master it sends; fails if the runtime ends first."""
        loop = asyncio.get_running_loop()
        proc = s.proc
        assert proc is not None

        async def receive() -> int:
            conn, _ = await loop.sock_accept(console)
            with conn:
                conn.setblocking(False)
                while True:
                    try:
                        _, fds, _, _ = socket.recv_fds(conn, 64, 4)
                    except BlockingIOError:
                        await wait_fd(conn.fileno(), write=False)
                        continue
                    if not fds:
                        raise ExecStartFailed("the runtime sent no terminal", 126)
                    for extra in fds[1:]:
                        os.close(extra)
                    return fds[0]

        getting = asyncio.ensure_future(receive())
        exiting = asyncio.ensure_future(proc.wait())
        try:
            await asyncio.wait({getting, exiting}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            exiting.cancel()
        if not getting.done():
            getting.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await getting
            raise self._failure(s)
        master = getting.result()
        os.set_blocking(master, False)
        return master

    async def _wait_started(self, s: ExecSession) -> None:
        """Waits for the runtime's pid file (written once the process runs) or its
        exit (with an error in its log when the process could not be started)."""
        proc = s.proc
        assert proc is not None
        pid_file = self._dir(s) / "pid"
        exiting = asyncio.ensure_future(proc.wait())
        delay = 0.001
        try:
            while True:
                with contextlib.suppress(FileNotFoundError, ValueError):
                    s.pid = int(pid_file.read_text().strip())
                    s.pidfd = _child_pidfd(s.pid, proc)
                    return
                if exiting.done():
                    failure = self._failure(s)
                    if failure.message:
                        raise failure
                    return  # ran and ended before we looked
                await asyncio.wait({exiting}, timeout=delay)
                delay = min(delay * 2, 0.05)
        finally:
            if not exiting.done():
                exiting.cancel()

    def _failure(self, s: ExecSession) -> ExecStartFailed:
        """The runtime's error from its JSON log ("" when it logged none)."""
        message = ""
        with contextlib.suppress(OSError):
            for line in reversed((self._dir(s) / "runtime.log").read_text().splitlines()):
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue
                if isinstance(entry, dict) and entry.get("level") == "error":
                    message = str(entry.get("msg", ""))
                    break
        if not message:
            proc = s.proc
            if proc is not None and proc.returncode is None:
                message = "the runtime ended without starting the process"
            elif proc is not None and self._pid_missing(s):
                message = f"the runtime exited with {proc.returncode}"
        if not message:
            return ExecStartFailed("", 0)
        text = f"OCI runtime exec failed: exec failed: {message}"
        return ExecStartFailed(text, start_error_code(message))

    def _pid_missing(self, s: ExecSession) -> bool:
        return not (self._dir(s) / "pid").exists()

    async def _follow(self, s: ExecSession) -> None:
        """Carries the process's output until it ends; records its exit."""
        proc = s.proc
        assert proc is not None
        pumps: list[asyncio.Future[None]] = []
        if s.master is not None:
            pumps.append(asyncio.ensure_future(self._pump_master(s, s.master)))
        else:
            if proc.stdout is not None:
                pumps.append(asyncio.ensure_future(self._pump_pipe(s, proc.stdout, STDOUT)))
            if proc.stderr is not None:
                pumps.append(asyncio.ensure_future(self._pump_pipe(s, proc.stderr, STDERR)))
        watch = asyncio.ensure_future(self._kill_with_container(s))
        try:
            code = await proc.wait()
            if pumps:
                _, pending = await asyncio.wait(pumps, timeout=DRAIN_GRACE)
                for task in pending:
                    task.cancel()
                await asyncio.gather(*pumps, return_exceptions=True)
        finally:
            watch.cancel()
            for task in pumps:
                task.cancel()
            self._release(s)
        self._end(s, code)
        self._publish(s, "exec_die", exitCode=str(code))
        self._cleanup(s)

    async def _pump_pipe(self, s: ExecSession, pipe: asyncio.StreamReader, stream: int) -> None:
        while data := await pipe.read(CHUNK):
            await self._send(s, stream, data)

    async def _pump_master(self, s: ExecSession, master: int) -> None:
        while data := await _fd_read(master):
            await self._send(s, STDOUT, data)

    async def _kill_with_container(self, s: ExecSession) -> None:
        """Kills the exec when its container exits (or is removed)."""
        with contextlib.suppress(KeyError):
            await self.containers.wait(s.container, "next-exit")
        if s.pidfd is not None:
            with contextlib.suppress(ProcessLookupError, OSError):
                signal.pidfd_send_signal(s.pidfd, signal.SIGKILL)
        await self._kill_runtime(s, grace=2.0)

    async def _kill_runtime(self, s: ExecSession, grace: float = 0.0) -> None:
        proc = s.proc
        if proc is None or proc.returncode is not None:
            return
        if grace:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(proc.wait()), grace)
                return
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()

    def _release(self, s: ExecSession) -> None:
        """Stops feeding input and closes the session's descriptors."""
        if s.input_task is not None and not s.input_task.done():
            s.input_task.cancel()
        for fd in (s.master, s.pidfd):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
        s.master = s.pidfd = None

    def _end(self, s: ExecSession, code: int) -> None:
        s.exit_code = code
        s.running = False
        s.ended_at = time.monotonic()
        with contextlib.suppress(ValueError):
            s.container.exec_ids.remove(s.id)
        s.done.set()

    def _cleanup(self, s: ExecSession) -> None:
        shutil.rmtree(self._dir(s), ignore_errors=True)

    # ------------------------------------------------------------------ resize

    async def resize(self, s: ExecSession, height: int, width: int) -> None:
        self.check_running(s.container, s.container.id)
        if not s.started:
            raise Conflict(f"exec {s.id} is not started")
        try:
            await asyncio.wait_for(s.ready.wait(), 10)
        except TimeoutError:
            raise SkiffError("timeout waiting for exec session ready") from None
        if s.proc is None:
            raise InvalidArgument("exec process is not started")
        if s.master is None:
            return  # no tty (or it ended): nothing to size
        size = struct.pack("HHHH", height, width, 0, 0)
        with contextlib.suppress(OSError):
            fcntl.ioctl(s.master, termios.TIOCSWINSZ, size)


# ----------------------------------------------------------------------- helpers


def _console_size(value: Any) -> tuple[int, int] | None:
    if value is None:
        return None
    if (
        not isinstance(value, list)
        or len(value) != 2
        or not all(isinstance(v, int) and v >= 0 for v in value)
    ):
        raise InvalidArgument("ConsoleSize must be [height, width]")
    return (value[0], value[1])


def console_size_arg(value: Any) -> tuple[int, int] | None:
    """A start request's ConsoleSize."""
    return _console_size(value)


def _child_pidfd(pid: int, runtime: asyncio.subprocess.Process) -> int | None:
    """A pidfd for the exec's process, checked to be the runtime's child (so that a
    pid reused after a quick exit is never signalled)."""
    try:
        fd = os.pidfd_open(pid)
    except OSError:
        return None
    try:
        with open(f"/proc/{pid}/stat") as f:
            ppid = int(f.read().rpartition(")")[2].split()[1])
    except (OSError, ValueError, IndexError):
        ppid = -1
    if ppid != runtime.pid:
        os.close(fd)
        return None
    return fd


def _make_dir(d: Path) -> None:
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True, mode=0o700)


async def _fd_read(fd: int) -> bytes:
    """Reads a non-blocking fd; b"" at its end (EIO: a pty whose other side closed)."""
    while True:
        try:
            return os.read(fd, CHUNK)
        except BlockingIOError:
            await wait_fd(fd, write=False)
        except OSError as err:
            if err.errno == errno.EIO:
                return b""
            raise
