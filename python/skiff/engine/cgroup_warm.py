"""Hiding the cost of the first cgroup migration on cgroup v1 hosts.

Moving a process into a cgroup (what the runtime does for a container's init) takes
the kernel's global threadgroup rwsem for writing, and after a quiet spell that waits
for a full RCU grace period: 5-16 ms on this kind of machine, while a migration right
after another one takes ~0.1 ms. So when a start is coming (a container is created or
started), the daemon writes its own pid into its own cgroup — a migration that moves
nothing — on a thread of its own. That pays the grace period while the monitor and
the runtime are being started, and the runtime's real migration a few milliseconds
later finds the lock warm.

Only on v1 (and hybrid) hosts: on cgroup v2 the runtime places init with
CLONE_INTO_CGROUP.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
#: A warm-up this recent still covers the next start (a create's covers the start
#: right after it): no second migration of the daemon's threads.
WARM_FOR = 0.02


def own_procs_file() -> Path | None:
    """``cgroup.procs`` of this process's cgroup in one v1 hierarchy, or None."""
    if (CGROUP_ROOT / "cgroup.controllers").exists():
        return None  # pure v2
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        for name in controllers.split(","):
            if name in ("pids", "cpu", "memory", "devices"):
                candidate = CGROUP_ROOT / name / path.lstrip("/") / "cgroup.procs"
                if candidate.exists():
                    return candidate
    return None


class CgroupWarmer:
    def __init__(self) -> None:
        self._procs = own_procs_file()
        self._wanted = threading.Event()
        self._thread: threading.Thread | None = None
        self._last = 0.0

    @property
    def enabled(self) -> bool:
        return self._procs is not None

    def poke(self) -> None:
        """A start is coming: warm the migration path (returns at once)."""
        if self._procs is None or time.monotonic() - self._last < WARM_FOR:
            return
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="cgroup-warm", daemon=True)
            self._thread.start()
        self._wanted.set()

    def _run(self) -> None:
        assert self._procs is not None
        pid = str(os.getpid())
        while True:
            self._wanted.wait()
            self._wanted.clear()
            try:
                with open(self._procs, "w") as f:
                    f.write(pid)
                self._last = time.monotonic()
            except OSError:
                # Not allowed here (a delegated or read-only hierarchy): stop trying.
                with contextlib.suppress(Exception):
                    self._procs = None
                return
