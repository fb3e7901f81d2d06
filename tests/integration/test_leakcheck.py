"""The session's leak check sees what a test leaves behind."""

from __future__ import annotations

import subprocess
import uuid

import pytest

from tests.conftest import short_tmpdir
from tests.support import leaks


@pytest.mark.root
def test_detects_mounts_links_netns_and_processes() -> None:
    before = leaks.Snapshot.take()
    name = f"sk{uuid.uuid4().hex[:8]}"
    target = short_tmpdir("skiff-leak-")
    proc = None
    try:
        subprocess.run(["mount", "-t", "tmpfs", "none", str(target)], check=True)
        subprocess.run(["ip", "link", "add", name, "type", "bridge"], check=True)
        subprocess.run(["ip", "netns", "add", name], check=True)
        proc = subprocess.Popen(["sleep", "60"])
        found = leaks.leaks(before, leaks.Snapshot.take())
        assert any(str(target) in m for m in found["mounts"])
        assert name in found["links"]
        assert name in found["netns"]
        assert any(p.startswith(f"{proc.pid}:") for p in found["processes"])
    finally:
        if proc is not None:
            proc.kill()
            proc.wait()
        subprocess.run(["ip", "netns", "delete", name], check=False)
        subprocess.run(["ip", "link", "delete", name], check=False)
        subprocess.run(["umount", str(target)], check=False)
        target.rmdir()
    assert leaks.leaks(before, leaks.Snapshot.take()) == {}


@pytest.mark.root
def test_detects_cgroups() -> None:
    before = leaks.Snapshot.take()
    base = next(
        p
        for p in (leaks.CGROUP_ROOT / "pids", leaks.CGROUP_ROOT / "unified", leaks.CGROUP_ROOT)
        if p.is_dir()
    )
    group = base / f"skiff-leaktest-{uuid.uuid4().hex[:8]}"
    group.mkdir()
    try:
        assert str(group) in leaks.leaks(before, leaks.Snapshot.take())["cgroups"]
    finally:
        group.rmdir()
    assert leaks.leaks(before, leaks.Snapshot.take()) == {}
