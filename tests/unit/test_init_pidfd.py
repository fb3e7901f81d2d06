"""The daemon's pidfd of a container's init: only while the pid is still init
(a child of its monitor), never of whatever took the pid since."""

from __future__ import annotations

import os
import subprocess

from skiff.engine.containers import _init_pidfd


def test_a_pidfd_only_of_the_monitors_own_child() -> None:
    child = subprocess.Popen(["sleep", "30"])
    try:
        fd = _init_pidfd(child.pid, os.getpid())  # we are its "monitor"
        assert fd is not None
        os.close(fd)
        # The pid is another parent's child now (init reaped, the pid taken since).
        assert _init_pidfd(child.pid, os.getppid()) is None
    finally:
        child.kill()
        child.wait()
    assert _init_pidfd(child.pid, os.getpid()) is None  # gone
