"""Reading a monitor's sync pipe (skiff-monitor's protocol, main.rs), with a stand-in
monitor script: the sync line and, for a container that ended at once, the exit
record in the same read; a refusal; an exit record read from the exit file."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from skiff.engine import monitor as mon

#: Writes what it is given to its --sync-fd in one write, then exits.
FAKE = """#!/usr/bin/env python3
import os, sys
fd = int(sys.argv[sys.argv.index("--sync-fd") + 1])
os.write(fd, os.environ["SYNC_TEXT"].encode())
"""


def _spawn(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str) -> mon.Started:
    fake = tmp_path / "fake-monitor"
    fake.write_text(FAKE)
    fake.chmod(0o755)
    monkeypatch.setenv("SYNC_TEXT", text)
    return mon.spawn(
        container_id="c1",
        bundle=tmp_path,
        files=mon.MonitorFiles(tmp_path / "m"),
        runtime=tmp_path / "runtime",
        runtime_root=str(tmp_path / "rt"),
        log=tmp_path / "log",
        terminal=False,
        stdin=False,
        monitor=fake,
    )


def test_the_exit_record_read_with_the_sync_line_is_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    record = '{"exit_code": 7, "signal": null, "oom_killed": false, "finished_at": "x"}\n'
    line = '{"pid": 41, "monitor_pid": 42, "monitor_start": 9001}\n'
    started = _spawn(tmp_path, monkeypatch, line + record)
    try:
        assert (started.pid, started.monitor_pid, started.monitor_start) == (41, 42, 9001)
        assert started.exit_data == record.encode()
        assert os.read(started.exit_fd, 100) == b""  # and then the end
        assert mon.parse_exit(started.exit_data) == {
            "exit_code": 7,
            "signal": None,
            "oom_killed": False,
            "finished_at": "x",
        }
    finally:
        os.close(started.exit_fd)


def test_a_refusal_is_a_start_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(mon.StartFailed, match="no such runtime"):
        _spawn(tmp_path, monkeypatch, '{"error": "no such runtime"}\n')


def test_exit_records_from_the_file_or_nothing(tmp_path: Path) -> None:
    files = mon.MonitorFiles(tmp_path)
    assert mon.read_exit(files) is None
    files.exit_file.write_text('{"exit_code": 0}\n')
    assert mon.read_exit(files) == {"exit_code": 0}
    assert mon.parse_exit(b"") is None
    assert mon.parse_exit(b"[1]") is None
    assert mon.parse_exit(b'{"exit_code": 1}\n{"exit_code": 2}\n') is None


def _inheritable_fds() -> set[int]:
    out = set()
    for name in os.listdir("/proc/self/fd"):
        try:
            if int(name) > 2 and os.get_inheritable(int(name)):
                out.add(int(name))
        except OSError:  # the listing's own descriptor, closed since
            pass
    return out


def test_a_monitor_spawn_makes_no_descriptor_inheritable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A process started meanwhile by another thread, or by uvloop (the daemon's loop,
    # which does not close a child's descriptors), would keep an inheritable sync
    # pipe, and the container's exit would go unseen while it runs.
    before = _inheritable_fds()
    during: list[set[int]] = []
    real = mon._native.spawn_detached

    def spawn_detached(argv: list[str], stdout_fd: int, stderr_path: Path) -> int:
        during.append(_inheritable_fds())
        return real(argv, stdout_fd, stderr_path)

    monkeypatch.setattr(mon._native, "spawn_detached", spawn_detached)
    started = _spawn(tmp_path, monkeypatch, '{"pid": 41, "monitor_pid": 42}\n')
    os.close(started.exit_fd)
    assert started.pid == 41
    assert during and all(fds <= before for fds in during)


def _peer_closed(sock: socket.socket) -> bool:
    sock.setblocking(False)
    try:
        return sock.recv(1 << 16) == b""
    except BlockingIOError:
        return False


def test_a_reserved_monitor_has_one_owner(tmp_path: Path) -> None:
    """Let go (its socket closed: the monitor leaves) at the end of the block unless
    given its command line, which makes the socket the caller's."""
    ours, monitor_end = socket.socketpair()
    with monitor_end:
        with mon.Reserved(ours.detach()):
            pass
        assert _peer_closed(monitor_end)

    ours, monitor_end = socket.socketpair()
    with monitor_end:
        with mon.Reserved(ours.detach()) as reserved:
            fd = reserved.give(["--id", "x"])
        try:
            assert monitor_end.recv(100) == b"7\n--id\0x\0"
            assert not _peer_closed(monitor_end)  # still open: the caller's now
            with pytest.raises(mon.NoMonitorReady):
                reserved.give(["--id", "y"])  # given already
        finally:
            os.close(fd)


def test_a_spawn_for_a_reserved_monitor_that_is_gone_fails_and_leaves_nothing(
    tmp_path: Path,
) -> None:
    ours, monitor_end = socket.socketpair()
    monitor_end.close()  # the monitor left
    files = mon.MonitorFiles(tmp_path / "m")
    with mon.Reserved(ours.detach()) as reserved, pytest.raises(mon.NoMonitorReady):
        mon.spawn(
            container_id="c1",
            bundle=tmp_path,
            files=files,
            runtime=Path("/bin/true"),
            runtime_root=str(tmp_path / "rt"),
            log=tmp_path / "log",
            terminal=False,
            stdin=False,
            monitor=Path("/bin/true"),
            reserved=reserved,
        )
    assert not files.dir.exists()
