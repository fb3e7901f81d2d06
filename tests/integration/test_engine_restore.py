"""skiffd killed and restarted: running containers are adopted and keep logging, exits
that happened meanwhile are reported, ``--rm`` and restart policies are honoured; a
SIGTERM shutdown stops containers (no live restore, as dockerd's default)."""

from __future__ import annotations

import os
import signal
import sqlite3
import time
from collections.abc import Callable

import pytest

from tests.support.daemon import RunningDaemon, start_daemon
from tests.support.engine import DOCKER, docker, docker_ok

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(DOCKER is None, reason="the docker CLI is not installed"),
]


def wait_for(check: Callable[[], bool], timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.05)


def test_kill9_adopts_running_containers_and_records_exits(
    engine_factory: Callable[..., RunningDaemon],
) -> None:
    d = engine_factory()
    docker_ok(
        d,
        "run",
        "-d",
        "--name",
        "ticker",
        "busybox",
        "sh",
        "-c",
        "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.1; done",
    )
    docker_ok(d, "run", "-d", "--name", "short", "busybox", "sh", "-c", "sleep 1; exit 5")
    docker_ok(d, "run", "-d", "--rm", "--name", "gone", "busybox", "sh", "-c", "sleep 1")
    wait_for(lambda: "tick 2" in docker_ok(d, "logs", "ticker"))

    os.kill(d.proc.pid, signal.SIGKILL)
    d.proc.wait()
    time.sleep(1.5)  # "short" and "gone" end while no daemon runs
    config = (d.root / "daemon.json").read_text()
    d.proc = start_daemon(d.root, config=config).proc

    assert docker_ok(d, "inspect", "-f", "{{.State.Status}}", "ticker").strip() == "running"
    count = docker_ok(d, "logs", "ticker").count("tick")
    wait_for(lambda: docker_ok(d, "logs", "ticker").count("tick") > count + 3)
    short = docker_ok(d, "inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", "short")
    assert short.split() == ["exited", "5"]
    assert docker(d, "inspect", "gone").code == 1  # --rm honoured across the restart
    # The adopted container is still fully managed: stop works and reports its end.
    docker_ok(d, "stop", "-t", "1", "ticker")
    assert docker_ok(d, "inspect", "-f", "{{.State.Running}}", "ticker").strip() == "false"
    docker_ok(d, "rm", "-f", "ticker", "short")


def test_sigterm_stops_containers_and_restart_policy_starts_them_again(
    engine_factory: Callable[..., RunningDaemon],
) -> None:
    d = engine_factory()
    docker_ok(d, "run", "-d", "--name", "always", "--restart", "always", "busybox", "sleep", "300")
    docker_ok(d, "run", "-d", "--name", "plain", "busybox", "sleep", "300")
    pid = int(docker_ok(d, "inspect", "-f", "{{.State.Pid}}", "plain"))
    assert d.stop() == 0
    assert not os.path.exists(f"/proc/{pid}")
    config = (d.root / "daemon.json").read_text()
    d.proc = start_daemon(d.root, config=config).proc
    wait_for(
        lambda: docker_ok(d, "inspect", "-f", "{{.State.Status}}", "always").strip() == "running"
    )
    plain = docker_ok(d, "inspect", "-f", "{{.State.Status}}", "plain").strip()
    assert plain == "exited"
    docker_ok(d, "rm", "-f", "always", "plain")


def test_a_removal_the_daemon_did_not_finish_is_finished_at_its_next_start(
    engine_factory: Callable[..., RunningDaemon],
) -> None:
    """DELETE answers once the container is gone from the store; its files and its
    lease on the image's layers go after. A daemon killed in between finishes
    them when it starts again."""
    d = engine_factory()
    cid = docker_ok(d, "run", "-d", "--name", "half", "busybox", "sleep", "300").strip()
    pid = int(docker_ok(d, "inspect", "-f", "{{.State.Pid}}", "half"))
    os.kill(d.proc.pid, signal.SIGKILL)
    d.proc.wait()
    os.kill(pid, signal.SIGKILL)  # ends while no daemon runs: its root stays mounted
    wait_for(lambda: not os.path.exists(f"/proc/{pid}"))
    data = d.root / "data"
    rootfs = data / "containers" / cid / "rootfs"
    wait_for(lambda: os.path.ismount(rootfs))
    # Where the daemon died: the row deleted, nothing else yet.
    with sqlite3.connect(data / "skiff.db") as db:
        db.execute("DELETE FROM containers WHERE id = ?", (cid,))
        leases = db.execute("SELECT count(*) FROM leases WHERE id = ?", (f"container-{cid}",))
        assert leases.fetchone()[0] == 1
    db.close()
    config = (d.root / "daemon.json").read_text()
    d.proc = start_daemon(d.root, config=config).proc

    assert not os.path.ismount(rootfs)
    assert not (data / "containers" / cid).exists()
    assert not [p for p in (data / "containers").iterdir() if cid in p.name]
    with sqlite3.connect(data / "skiff.db") as db:
        leases = db.execute("SELECT count(*) FROM leases WHERE id = ?", (f"container-{cid}",))
        assert leases.fetchone()[0] == 0
    db.close()
    assert docker(d, "inspect", "half").code == 1
    # The name is free again.
    docker_ok(d, "create", "--name", "half", "busybox", "true")
    docker_ok(d, "rm", "half")
