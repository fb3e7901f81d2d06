"""The cgroup warm-up thread's timing logic, with a plain file standing in for the
daemon's ``cgroup.procs`` (the migration itself is the kernel's)."""

from __future__ import annotations

import os
import time
from pathlib import Path

from skiff.engine import cgroup_warm
from skiff.engine.cgroup_warm import CgroupWarmer


def _written(path: Path, timeout: float = 2.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.read_text():
            return True
        time.sleep(0.002)
    return False


def test_a_recent_warm_up_covers_the_next_poke(tmp_path: Path) -> None:
    procs = tmp_path / "cgroup.procs"
    procs.write_text("")
    warmer = CgroupWarmer()
    warmer._procs = procs  # the stand-in
    warmer.poke()
    assert _written(procs)
    assert procs.read_text() == str(os.getpid())
    procs.write_text("")
    warmer.poke()  # right after: still warm, no second migration
    assert not _written(procs, timeout=0.05)
    time.sleep(cgroup_warm.WARM_FOR)
    warmer.poke()
    assert _written(procs)
