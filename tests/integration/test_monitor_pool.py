"""skiffd's pool of monitors started ahead of need (``skiff-monitor --wait-args``):
a start hands an idle one its command line; idle ones leave when the pool closes."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from skiff.engine.forkserver import ForkServer
from skiff.engine.monitor import MonitorPool, find_monitor, write_cgroup_mounts
from tests.support import cgroups

pytestmark = pytest.mark.root


def _wait_for(check, timeout: float = 10) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)


def _monitors_marked(marker: str) -> list[int]:
    """Waiting monitors started with ``marker`` in their environment: daemonized
    ones (each leads a session of its own), not the first process of one (which
    has the same command line and environment until it leaves)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            argv = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
            env = Path(f"/proc/{entry}/environ").read_bytes()
            sid = os.getsid(int(entry))
        except OSError:
            continue
        if b"--wait-args" in argv and marker.encode() in env and sid == int(entry):
            found.append(int(entry))
    return found


def _sync_answer(fd: int) -> object:
    """The line a monitor answers on its sync socket ``fd`` (closed after)."""
    try:
        data = b""
        while b"\n" not in data and (chunk := os.read(fd, 4096)):
            data += chunk
    finally:
        os.close(fd)
    return json.loads(data)


@pytest.fixture
def marked_pool(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[MonitorPool, str]]:
    marker = f"SKIFF_POOL_TEST={secrets.token_hex(8)}"
    name, value = marker.split("=")
    monkeypatch.setenv(name, value)
    pool = MonitorPool(2, find_monitor())
    try:
        yield pool, marker
    finally:
        pool.close()


def test_idle_monitors_are_ready_and_leave_when_the_pool_closes(
    marked_pool: tuple[MonitorPool, str],
) -> None:
    pool, marker = marked_pool
    assert pool.hand_over(["--id", "x"]) == -1  # none yet: this starts the filler
    _wait_for(lambda: len(_monitors_marked(marker)) == 2)
    pids = _monitors_marked(marker)
    pool.close()
    _wait_for(lambda: not any(os.path.exists(f"/proc/{p}") for p in pids))
    assert pool.hand_over(["--id", "x"]) == -1


def test_a_handed_over_command_line_is_answered_on_the_sync_socket(
    marked_pool: tuple[MonitorPool, str],
) -> None:
    pool, marker = marked_pool
    pool.hand_over([])
    _wait_for(lambda: len(_monitors_marked(marker)) == 2)
    fd = pool.hand_over(["--bogus", "value with spaces"])
    assert fd >= 0
    assert _sync_answer(fd) == {"error": "unknown option --bogus"}
    # The pool starts another in its place.
    _wait_for(lambda: len(_monitors_marked(marker)) == 2)


def test_each_idle_monitor_keeps_a_spare_cgroup_and_removes_it_when_unused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """On cgroup v1 a waiting monitor makes ``PARENT/.spare-PID`` in every hierarchy
    (its container's create renames it into place); closed unused, it removes it."""
    if (cgroups.ROOT / "cgroup.controllers").exists():
        pytest.skip("cgroup v2 host: no spare cgroups there")
    marker = f"SKIFF_POOL_TEST={secrets.token_hex(8)}"
    name, value = marker.split("=")
    monkeypatch.setenv(name, value)
    parent = f"skiff-test-pool-{secrets.token_hex(4)}"
    pool = MonitorPool(2, find_monitor(), cgroup_parent=f"/{parent}")
    try:
        pool.hand_over([])
        _wait_for(lambda: len(_monitors_marked(marker)) == 2)
        pids = _monitors_marked(marker)

        # The v1 hierarchies (not the empty v2 one of a hybrid host).
        v1 = [h for h in cgroups.hierarchies() if not (h / "cgroup.controllers").exists()]

        def spares() -> set[tuple[str, str]]:
            found = set()
            for h in v1:
                d = h / parent
                if d.is_dir():
                    found |= {(h.name, p.name) for p in d.iterdir() if p.name.startswith(".spare-")}
            return found

        want = {(h.name, f".spare-{p}") for h in v1 for p in pids}
        _wait_for(lambda: spares() == want)
        pool.close()
        _wait_for(lambda: not spares())
    finally:
        pool.close()
        cgroups.remove_tree(parent)


def _alive(pid: int) -> bool:
    """Running: not gone, not a zombie."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_idle_monitors_are_forked_by_a_server_that_leaves_with_the_pool(
    marked_pool: tuple[MonitorPool, str],
) -> None:
    """The pool's monitors are made by a fork server (``--fork-server``), the
    daemon's child, not started one by one; a start that finds the pool empty
    gets one forked for it at once (:meth:`MonitorPool.fresh`). The servers leave,
    reaped, when the pool closes."""
    pool, marker = marked_pool
    pool.hand_over([])
    _wait_for(lambda: len(_monitors_marked(marker)) == 2)
    for pid in _monitors_marked(marker):
        assert b"--fork-server" in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        # Made ahead of need: waiting at the lowest priority.
        assert os.getpriority(os.PRIO_PROCESS, pid) == 19
    ahead = pool._ahead.pid
    assert ahead and _alive(ahead)
    assert os.getpriority(os.PRIO_PROCESS, ahead) == os.getpriority(os.PRIO_PROCESS, 0)

    fd = pool.fresh(["--bogus", "x"])
    assert fd >= 0
    assert _sync_answer(fd) == {"error": "unknown option --bogus"}
    now = pool._now.pid
    assert now and _alive(now) and now != ahead

    pool.close()
    for server in (ahead, now):
        with pytest.raises(ChildProcessError):  # reaped already
            os.waitpid(server, os.WNOHANG)
        assert not _alive(server)


def test_a_killed_fork_server_is_started_again(marked_pool: tuple[MonitorPool, str]) -> None:
    pool, _ = marked_pool
    fd = pool.fresh(["--bogus", "x"])
    assert fd >= 0
    os.close(fd)
    server = pool._now.pid
    os.kill(server, signal.SIGKILL)
    # The request it was given fails; the next one starts another server.
    fd = pool.fresh(["--bogus", "x"])
    if fd < 0:
        fd = pool.fresh(["--bogus", "x"])
    assert fd >= 0
    os.close(fd)
    assert pool._now.pid not in (0, server)
    with pytest.raises(ChildProcessError):
        os.waitpid(server, os.WNOHANG)


def test_a_program_that_is_no_fork_server_is_given_up_for_a_while(tmp_path: Path) -> None:
    """A server that answers something else (a monitor binary without
    ``--fork-server`` answers an error line and leaves) is stopped and reaped; it is
    started again once at once, then only after a pause."""
    runs = tmp_path / "runs"
    server = ForkServer(lambda: ["/bin/sh", "-c", f"echo run >> {runs}; echo nope", "sh"])
    try:
        assert server.monitor(background=True) == -1
        assert server.pid == 0  # stopped and reaped
        assert server.monitor(background=False) == -1
        assert server.monitor(background=False) == -1
        assert runs.read_text() == "run\nrun\n"
    finally:
        server.close()


def _opens_mountinfo(argv: list[str], tmp_path: Path) -> bool:
    """Runs a waiting monitor (``--wait-args``) under strace until it has read its
    cgroup mounts and left (its sync socket closed unused); whether it opened
    mountinfo."""
    trace = tmp_path / f"strace-{secrets.token_hex(4)}"
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    with ours, theirs:
        proc = subprocess.Popen(
            ["strace", "-f", "-qq", "-e", "trace=openat", "-o", str(trace), *argv],
            stdout=theirs.fileno(),
        )
    try:
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return "/proc/self/mountinfo" in trace.read_text()


@pytest.mark.skipif(shutil.which("strace") is None, reason="needs strace")
def test_a_monitor_reads_the_cgroup_mounts_it_is_given_while_they_hold(tmp_path: Path) -> None:
    """The daemon writes its cgroup mounts once (``write_cgroup_mounts``); a monitor
    given them does not read mountinfo (which lists every running container's
    root), unless they no longer describe the host's hierarchies."""
    hint = write_cgroup_mounts(tmp_path / "cgroup-mounts")
    assert hint is not None
    lines = hint.read_text().splitlines(keepends=True)
    assert lines and lines == cgroups.mountinfo_lines()
    base = [str(find_monitor()), "--wait-args", "--sync-fd", "1"]
    assert _opens_mountinfo(base, tmp_path)
    assert not _opens_mountinfo([*base, "--cgroup-mounts", str(hint)], tmp_path)
    # A hierarchy the file does not have (mounted since): mountinfo is read.
    stale = tmp_path / "stale"
    stale.write_text("".join(lines[1:]))
    assert _opens_mountinfo([*base, "--cgroup-mounts", str(stale)], tmp_path)
    assert _opens_mountinfo([*base, "--cgroup-mounts", str(tmp_path / "none")], tmp_path)
