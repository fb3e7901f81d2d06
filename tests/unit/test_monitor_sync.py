"""Reading a monitor's sync pipe (skiff-monitor's protocol, main.rs), with a stand-in
monitor script: the sync line and, for a container that ended at once, the exit
record in the same read; a refusal; an exit record read from the exit file."""

from __future__ import annotations

import os
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
    started = _spawn(tmp_path, monkeypatch, '{"pid": 41, "monitor_pid": 42}\n' + record)
    try:
        assert (started.pid, started.monitor_pid) == (41, 42)
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


def test_subprocess_exec_waits_out_a_monitor_spawn() -> None:
    # uvloop (the daemon's loop) does not close inherited descriptors in a child: a
    # process started while a monitor's sync pipe is inheritable would keep it.
    import asyncio

    import uvloop

    async def main() -> None:
        assert mon._spawn_lock.acquire(timeout=5)
        try:
            task = asyncio.ensure_future(mon.subprocess_exec("true"))
            await asyncio.sleep(0.05)
            assert not task.done()
        finally:
            mon._spawn_lock.release()
        proc = await asyncio.wait_for(task, 5)
        assert await proc.wait() == 0
        assert not mon._spawn_lock.locked()

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(main())
