"""Containers made ahead of need ("standby"): after a container started, a thread of
the daemon's own makes one more like it — its directory, root mounted, cgroup,
namespaces and mounts set up by the runtime, init parked before its process
(``skiff-monitor --standby``). The next create of the same image whose container
would come out the same but for its process and hostname takes it: the container
gets the standby's id (an id is random either way), and its start only sends init
the process, over init's sync socket, which the monitor handed over when the standby
was made (``start-socket``).

What may differ is decided on the runtime spec itself: the container's spec, built
with the standby's id, must equal the standby's but for ``process``, ``hostname``
and ``annotations``. What is read from the host at the time (bind mounts, devices,
another container's namespaces) makes a container ineligible, since it would be
read when the standby was made, not when the container is created.

At most one standby is kept, for the last eligible container started. A standby is
work done ahead of need only: one that fails or dies is thrown away, and the
container is made the usual way.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import signal
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from skiff import jsontext
from skiff.engine import monitor as mon
from skiff.engine.container import Container
from skiff.engine.stock import lower_priority

log = logging.getLogger(__name__)

#: How long a standby's monitor may take to clean up after its init was killed.
RETIRE_TIMEOUT = 10.0
#: The largest start message (JSON) a standby's init takes (the runtime takes 128
#: KiB with its framing).
MAX_PROCESS = 120 << 10
#: Failures in a row after which a template is given up (until another comes).
MAX_FAILURES = 3
#: How long to wait for the monitor pool to have one ready again (seconds).
RETRY_DELAY = 0.05
#: How long after a start the next standby is made (seconds): the making takes the
#: daemon's interpreter lock now and then, and the calls that follow a start (wait,
#: logs, remove) come first.
MAKE_DELAY = 0.02


def eligible(config: dict[str, Any], host_config: dict[str, Any]) -> bool:
    """Whether a container with this config may take (or make) a standby: nothing
    in it is read from the host or another container at its start, and no
    terminal or stdin (the monitor's pty and stdin pipe are made with it)."""
    hc = host_config
    if config.get("Tty") or config.get("OpenStdin") or config.get("Volumes"):
        return False
    if any(hc.get(k) for k in ("Binds", "Mounts", "VolumesFrom", "Devices", "Links")):
        return False
    if hc.get("Privileged") or hc.get("DeviceCgroupRules") or hc.get("DeviceRequests"):
        return False
    modes = [hc.get(k) or "" for k in ("NetworkMode", "PidMode", "IpcMode", "UTSMode")]
    return not any(m.startswith("container:") for m in modes)


def netns_path(spec: dict[str, Any]) -> str | None:
    """The network namespace a spec joins (by path), if any."""
    for ns in spec["linux"]["namespaces"]:
        if ns["type"] == "network":
            path: str | None = ns.get("path")
            return path
    return None


def start_message(spec: dict[str, Any]) -> bytes:
    """What the start of a standby sends its init (see monitor.start_standby): the
    process and hostname of ``spec``, as one line of JSON."""
    return jsontext.dumps({"process": spec["process"], "hostname": spec.get("hostname")})


def same_container(spec: dict[str, Any], other: dict[str, Any]) -> bool:
    """Whether two specs make the same container but for its process (given with
    the start) and hostname (set then); the process's terminal must agree."""

    def rest(s: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in s.items() if k not in ("process", "hostname", "annotations")}

    terminal = (spec.get("process") or {}).get("terminal", False)
    return terminal == (other.get("process") or {}).get("terminal", False) and rest(spec) == rest(
        other
    )


@dataclass(frozen=True)
class Template:
    """What the next standby is made like: a container's image and config."""

    image_id: str
    chain: tuple[str, ...]
    lowers: tuple[str, ...]
    config: dict[str, Any]
    host_config: dict[str, Any]
    path: str
    args: tuple[str, ...]

    @property
    def key(self) -> tuple[str, tuple[str, ...], bool]:
        """What must agree before the specs are compared: the image, its layers and
        how the root is mounted (volatile with --rm)."""
        return (self.image_id, self.lowers, bool(self.host_config.get("AutoRemove")))

    def like(self, other: Template) -> bool:
        """Whether a standby made like ``other`` serves this template: the same key
        and host config (the config is mostly the process, which comes with the
        start)."""
        return self.key == other.key and self.host_config == other.host_config


@dataclass
class Standby:
    """A container made ahead of need, its init parked before its process."""

    template: Template
    container: Container
    spec: dict[str, Any]
    #: the contents of the files made in its directory (hostname, hosts, ...)
    files: dict[str, str]
    #: the monitor's log options (file, max size, max files)
    log_options: tuple[Any, ...]
    started: mon.Started
    #: pidfds of init and of the monitor
    init_fd: int
    monitor_fd: int
    #: init's sync socket, handed over by the monitor: the start goes there
    sync: socket.socket | None = None
    #: when the monitor started (see monitor.start_time)
    monitor_start: int = 0
    #: what its start sends init (set when a container takes it)
    start_message: bytes = b""

    def alive(self) -> bool:
        """Init still waits (nothing came on the sync pipe: no exit record)."""
        if self.started.exit_data:
            return False
        ready, _, _ = select.select([self.started.exit_fd], [], [], 0)
        return not ready

    def retire(self) -> None:
        """Kills init and waits for the monitor to have cleaned up (the runtime's
        state and cgroup gone); closes the descriptors. Not the directory or the
        mounted root."""
        with contextlib.suppress(ProcessLookupError, OSError):
            signal.pidfd_send_signal(self.init_fd, signal.SIGKILL)
        ready: list[int] = []
        if self.monitor_fd >= 0:
            ready, _, _ = select.select([self.monitor_fd], [], [], RETIRE_TIMEOUT)
        if not ready:
            log.warning("the monitor of standby %s did not end", self.container.id[:12])
        self.close_pidfds()
        if self.sync is not None:
            self.sync.close()
        with contextlib.suppress(OSError):
            os.close(self.started.exit_fd)

    def close_pidfds(self) -> None:
        """Closes the pidfds (the exit pipe is the started container's)."""
        for fd in (self.init_fd, self.monitor_fd):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self.init_fd = self.monitor_fd = -1


class StandbyPool:
    """Keeps at most one standby, like the template last asked for, made by a
    thread of its own at a low priority. ``make`` builds one (raising on failure);
    ``discard`` retires one nobody took and removes what it made."""

    def __init__(
        self,
        make: Callable[[Template], Standby],
        discard: Callable[[Standby], None],
        enabled: bool = True,
    ) -> None:
        self._make = make
        self._discard = discard
        self.enabled = enabled
        self._cond = threading.Condition()
        self._template: Template | None = None
        self._ready: Standby | None = None
        self._failures = 0
        self._closed = False
        self._thread: threading.Thread | None = None
        self._discarding: set[threading.Thread] = set()
        self._busy = False
        self._holds = 0

    def want(self, template: Template) -> None:
        """The next standby is to be like ``template`` (made unless one is ready)."""
        if not self.enabled:
            return
        with self._cond:
            if self._closed:
                return
            if self._template is None or not self._template.like(template):
                self._failures = 0
            self._template = template
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="standby", daemon=True)
                self._thread.start()
            self._cond.notify()

    def take(self, key: tuple[str, tuple[str, ...], bool]) -> Standby | None:
        """The ready standby if it is of ``key`` (image and layers) and alive; now
        the caller's (to claim, or to give to :meth:`give_back`)."""
        with self._cond:
            s = self._ready
            if s is None or s.template.key != key:
                return None
            self._ready = None
        if s.alive():
            return s
        self.give_back(s)  # and the next is made
        return None

    def give_back(self, s: Standby) -> None:
        """A standby taken but not claimed (its container would not have come out
        the same): thrown away, so the next is made like the template."""
        self._throw_away(s)
        with self._cond:
            self._cond.notify()

    def flush(self, timeout: float = 60.0) -> None:
        """Throws away the standby (ready or being made) and forgets the template
        until the next :meth:`want`: before images are deleted (a standby holds a
        lease on its image's layers)."""
        with self._cond:
            self._template = None
            ready, self._ready = self._ready, None
            self._cond.wait_for(lambda: not self._busy, timeout)
        if ready is not None:
            self._discard(ready)
        for t in list(self._discarding):
            t.join(timeout)

    def hold(self) -> None:
        """Throws away the standby (see :meth:`flush`) and makes none until
        :meth:`release`: around an image delete."""
        with self._cond:
            self._holds += 1
        self.flush()

    def release(self) -> None:
        with self._cond:
            self._holds -= 1
            self._cond.notify()

    def close(self, timeout: float = 60.0) -> None:
        """Stops making standbys and throws away the one ready (and one being made:
        this waits for the thread)."""
        with self._cond:
            self._closed = True
            ready, self._ready = self._ready, None
            thread = self._thread
            self._cond.notify_all()
        if ready is not None:
            self._discard(ready)
        for t in [thread, *self._discarding]:
            if t is not None:
                t.join(timeout)

    def _throw_away(self, s: Standby) -> None:
        def discard() -> None:
            try:
                self._discard(s)
            finally:
                self._discarding.discard(threading.current_thread())

        t = threading.Thread(target=discard, name="standby-discard", daemon=True)
        self._discarding.add(t)
        t.start()

    def _wanted(self) -> Template | None:
        """(Under the lock.) The template to make a standby for now, if any."""
        t = self._template
        if self._closed or self._holds or t is None or self._failures >= MAX_FAILURES:
            return None
        if self._ready is not None and self._ready.template.like(t):
            return None
        return t

    def _run(self) -> None:
        lower_priority()
        while True:
            with self._cond:
                wanted = self._wanted()
                while not self._closed and wanted is None:
                    self._cond.wait()
                    wanted = self._wanted()
                if self._closed or wanted is None:
                    return
                t = wanted
                stale, self._ready = self._ready, None
                self._busy = True
            try:
                self._make_one(t, stale)
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def _make_one(self, t: Template, stale: Standby | None) -> None:
        if stale is not None:
            self._discard(stale)
        try:
            made = self._make(t)
        except mon.NoMonitorReady:
            # Not a failure: the pool is being refilled (a burst of starts took
            # them); try again shortly.
            with self._cond:
                self._cond.wait(RETRY_DELAY)
            return
        except Exception as err:  # a standby is only ever a head start
            log.warning("making a container ahead of need: %s", err)
            with self._cond:
                self._failures += 1
            return
        with self._cond:
            now = self._template
            keep = not self._closed and now is not None and now.like(t)
            if keep:
                self._ready = made
                self._failures = 0
        if not keep:
            self._discard(made)
