"""A monitor fork server (``skiff-monitor --wait-args --fork-server``, see its
forks.rs): one monitor process, the daemon's child, that makes waiting monitors by
forking itself, one per request, instead of a new process being started (executed)
for each. Each answer carries the new monitor's sync socket; the monitor is the one
a ``--wait-args`` start would have made (daemonized, its spare cgroup made).

The server is started on first use and again after it failed (after a growing pause
when it keeps failing: a monitor binary without ``--fork-server``, say); it leaves
when its socket closes (at :meth:`ForkServer.close`, or with the daemon)."""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

from skiff import _native

log = logging.getLogger(__name__)

#: How long the server may take to answer (it forks twice: well under a millisecond).
ANSWER_TIMEOUT = 2.0
#: The longest pause before a server that keeps failing is started again.
MAX_RETRY_DELAY = 60.0
#: How long a server whose socket was closed may take to leave.
EXIT_TIMEOUT = 2.0


class ForkServer:
    def __init__(self, argv: Callable[[], list[str]]) -> None:
        """``argv``: gives the server's command line but for ``--sync-fd`` (when it
        is started)."""
        self._argv = argv
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._pid = 0
        self._closed = False
        self._failures = 0  # in a row
        self._retry_at = 0.0

    def monitor(self, *, background: bool) -> int:
        """A new waiting monitor's sync socket (the caller's, close-on-exec), or -1
        when the server cannot make one. ``background``: made ahead of need (it
        waits at the lowest priority until used)."""
        with self._lock:
            if self._closed or time.monotonic() < self._retry_at:
                return -1
            try:
                sock = self._sock or self._start()
                fd = self._request(sock, b"b" if background else b"n")
            except OSError as err:
                log.warning("skiff-monitor fork server: %s", err)
                self._stop()
                self._failures += 1
                # Once at once (a server that died), then less and less often.
                if self._failures > 1:
                    delay = min(MAX_RETRY_DELAY, 0.5 * 2 ** (self._failures - 2))
                    self._retry_at = time.monotonic() + delay
                return -1
            self._failures = 0
            return fd

    def close(self) -> None:
        """Ends the server (its idle monitors stay until their own sockets close)."""
        with self._lock:
            self._closed = True
            self._stop()

    @property
    def pid(self) -> int:
        """The server's pid (0 when none runs)."""
        return self._pid

    def _start(self) -> socket.socket:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        with theirs:
            try:
                self._pid = _native.spawn_detached(
                    [*self._argv(), "--sync-fd", "1"], theirs.fileno(), Path(os.devnull)
                )
            except BaseException:
                ours.close()
                raise
        ours.settimeout(ANSWER_TIMEOUT)
        self._sock = ours
        return ours

    def _request(self, sock: socket.socket, kind: bytes) -> int:
        sock.sendall(kind)
        data = b""
        fds: list[int] = []
        try:
            while not data.endswith(b"\n"):
                chunk, got, _, _ = socket.recv_fds(sock, 256, 1, socket.MSG_CMSG_CLOEXEC)
                fds += got
                if not chunk:
                    raise ConnectionResetError("the server ended")
                data += chunk
        except BaseException:
            for fd in fds:
                os.close(fd)
            raise
        if data.startswith(b"+") and len(fds) == 1:
            return fds[0]
        for fd in fds:
            os.close(fd)
        text = data.decode(errors="replace").strip()
        if not data.startswith(b"-"):  # not a fork server's answer
            raise ConnectionError(f"unexpected answer: {text[:200]}")
        log.warning("skiff-monitor fork server: %s", text[1:])
        return -1

    def _stop(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        if self._pid:
            _reap(self._pid)
            self._pid = 0


def _reap(pid: int) -> None:
    """Waits for the server (which leaves at the end of its input) and reaps it;
    one that does not leave in time is killed first."""
    deadline = time.monotonic() + EXIT_TIMEOUT
    try:
        while os.waitpid(pid, os.WNOHANG) == (0, 0):
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                return
            time.sleep(0.005)
    except ChildProcessError:
        pass
