"""Containers made ahead of need (skiff.engine.standby): after a start, skiffd makes
one more container like it, its init parked before its process; the next create
that would come out the same takes it (the container gets its id) and its start
only gives init the process. Driven through the docker CLI; each test checks that a
standby was (or was not) taken, that the container behaves as one made the usual
way, and that nothing of a standby is left behind."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from skiff.engine import monitor as mon
from tests.support import cgroups
from tests.support.daemon import CGROUP_PARENT, RunningDaemon, start_daemon
from tests.support.engine import DOCKER, docker, docker_ok

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(DOCKER is None, reason="the docker CLI is not installed"),
]


@dataclass(frozen=True)
class Standby:
    id: str
    init: int
    rootfs: Path


def wait_for(check: Callable[[], bool], timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.05)


def standbys(d: RunningDaemon) -> list[Standby]:
    """Containers the runtime has, with a directory but no row: made ahead of need."""
    rows = set(docker_ok(d, "ps", "-aq", "--no-trunc").split())
    found = []
    for entry in (d.root / "data" / "containers").iterdir():
        state = d.root / "exec" / "runtime" / entry.name / "state.json"
        if entry.name in rows or not state.exists():
            continue
        try:
            pid = int(json.loads(state.read_text())["pid"])
        except (OSError, ValueError):  # being written
            continue
        found.append(Standby(entry.name, pid, entry / "rootfs"))
    return found


def one_standby(d: RunningDaemon) -> Standby:
    wait_for(lambda: len(standbys(d)) == 1)
    return standbys(d)[0]


def gone(s: Standby, d: RunningDaemon) -> bool:
    """Nothing of the standby is left: its init, root mount, directory, runtime
    state, monitor files and lease."""
    data = d.root / "data"
    with sqlite3.connect(data / "skiff.db") as db:
        lease = db.execute("SELECT count(*) FROM leases WHERE id = ?", (f"container-{s.id}",))
        leased = lease.fetchone()[0]
    db.close()
    return not (
        os.path.exists(f"/proc/{s.init}")
        or os.path.ismount(s.rootfs)
        or (data / "containers" / s.id).exists()
        or (d.root / "exec" / "runtime" / s.id).exists()
        or (d.root / "exec" / "m" / s.id[:16]).exists()
        or leased
    )


def seed(d: RunningDaemon) -> None:
    """Starts (and removes) a plain container: a standby like it is made."""
    docker_ok(d, "run", "--name", "seed", "--network", "none", "busybox", "true")
    docker_ok(d, "rm", "seed")


def seeded(engine_factory: Callable[..., RunningDaemon]) -> tuple[RunningDaemon, Standby]:
    """A fresh daemon and the standby made after a first container's start."""
    d = engine_factory()
    seed(d)
    return d, one_standby(d)


def create_taking(d: RunningDaemon, s: Standby, name: str, *args: str) -> None:
    """``docker create --name NAME --network none ARGS``, which takes standby ``s``."""
    docker_ok(d, "create", "--name", name, "--network", "none", *args)
    assert container_id(d, name) == s.id


def container_id(d: RunningDaemon, name: str) -> str:
    return docker_ok(d, "inspect", "-f", "{{.Id}}", name).strip()


def test_the_next_container_like_the_last_started_takes_the_standby(
    engine_factory: Callable[..., RunningDaemon],
) -> None:
    d, s = seeded(engine_factory)
    assert os.path.ismount(s.rootfs)
    # Another process, user, working directory, environment and hostname: all
    # given to the waiting init with the start.
    script = (
        "echo $FOO $HOSTNAME; hostname; cat /etc/hostname; pwd; id -u; ip link | grep -c LOOPBACK"
    )
    out = docker_ok(
        d,
        "run",
        "--name",
        "took",
        "--network",
        "none",
        "-e",
        "FOO=late",
        "-w",
        "/tmp",
        "-u",
        "1000",
        "--hostname",
        "given",
        "busybox",
        "sh",
        "-c",
        script,
    )
    assert container_id(d, "took") == s.id
    assert out.split("\n") == ["late given", "given", "given", "/tmp", "1000", "1", ""]
    assert docker_ok(d, "inspect", "-f", "{{.State.ExitCode}}", "took").strip() == "0"
    # Its output went to its log like any container's.
    assert docker_ok(d, "logs", "took").startswith("late given\n")
    # The next one is made while it runs; the taken one is an ordinary container.
    nxt = one_standby(d)
    assert nxt.id != s.id
    docker_ok(d, "rm", "took")
    wait_for(lambda: not (d.root / "data" / "containers" / s.id).exists())
    assert not os.path.ismount(s.rootfs)


def test_a_container_that_differs_in_its_command_only_gets_its_own_argv_and_name(
    engine_factory: Callable[..., RunningDaemon],
) -> None:
    """Its spec is the standby's with its own argv and name (nothing else of a spec
    follows from the command); the bundle says so for a later exec."""
    d, s = seeded(engine_factory)  # like `docker run --network none busybox true`
    made = json.loads((d.root / "data" / "containers" / s.id / "config.json").read_text())
    out = docker_ok(
        d, "run", "--name", "cmd-only", "--network", "none", "busybox", "echo", "its own"
    )
    assert container_id(d, "cmd-only") == s.id and out == "its own\n"
    spec = json.loads((d.root / "data" / "containers" / s.id / "config.json").read_text())
    assert spec["process"]["args"] == ["echo", "its own"]
    assert spec["annotations"] == {"org.skiff.container.name": "cmd-only"}
    for key in ("process", "annotations"):
        made.pop(key), spec.pop(key)
    assert spec == made
    docker_ok(d, "rm", "cmd-only")
    wait_for(lambda: gone(s, d))


def test_an_exec_in_a_container_that_took_a_standby_gets_its_config(
    engine_factory: Callable[..., RunningDaemon],
) -> None:
    """An exec starts from the container's own process config (its bundle's
    config.json, rewritten for it after the create is answered), not the one the
    standby was made with."""
    d, s = seeded(engine_factory)
    create_taking(d, s, "ex", "-e", "FOO=mine", "-w", "/tmp", "busybox", "sleep", "60")
    docker_ok(d, "start", "ex")
    out = docker_ok(d, "exec", "ex", "sh", "-c", "echo $FOO; pwd")
    assert out.split() == ["mine", "/tmp"]  # its env and working directory
    docker_ok(d, "rm", "-f", "ex")
    wait_for(lambda: gone(s, d))


def seccomp_mode(pid: int) -> str:
    """The ``Seccomp:`` field of /proc/PID/status (0 none, 2 a filter)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Seccomp:"):
            return line.split()[1]
    raise AssertionError(f"no Seccomp line for {pid}")


def test_a_standby_loads_a_profile_that_allows_what_is_left_before_it_waits(
    engine_factory: Callable[..., RunningDaemon], tmp_path: Path
) -> None:
    d, s = seeded(engine_factory)
    # The default profile lets through all that init does after it waits: the
    # filter is on while it waits, and the process runs under it.
    assert seccomp_mode(s.init) == "2"
    create_taking(d, s, "sc", "busybox", "grep", "Seccomp:", "/proc/self/status")
    assert docker_ok(d, "start", "-a", "sc").split() == ["Seccomp:", "2"]
    docker_ok(d, "rm", "sc")
    # A profile with a rule on a call init makes after it waits (umask): loaded
    # at the start, the usual way.
    profile = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [
            {"names": ["umask"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["mount"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1},
        ],
    }
    (tmp_path / "p.json").write_text(json.dumps(profile))
    opts = ["--network", "none", "--security-opt", f"seccomp={tmp_path / 'p.json'}"]
    docker_ok(d, "run", "--name", "cu", *opts, "busybox", "true")
    docker_ok(d, "rm", "cu")

    def like_cu() -> list[Standby]:
        return [
            x
            for x in standbys(d)
            if "umask" in (d.root / "data" / "containers" / x.id / "config.json").read_text()
        ]

    wait_for(lambda: len(like_cu()) == 1)
    late = like_cu()[0]
    assert seccomp_mode(late.init) == "0"
    docker_ok(
        d, "create", "--name", "cu2", *opts, "busybox", "grep", "Seccomp:", "/proc/self/status"
    )
    assert container_id(d, "cu2") == late.id
    assert docker_ok(d, "start", "-a", "cu2").split() == ["Seccomp:", "2"]
    docker_ok(d, "rm", "cu2")


def test_a_container_unlike_the_standby_is_made_the_usual_way(
    engine_factory: Callable[..., RunningDaemon],
) -> None:
    d, s = seeded(engine_factory)
    limit = 48 * 1024 * 1024
    out = docker_ok(
        d,
        "run",
        "--name",
        "other",
        "--network",
        "none",
        "--memory",
        str(limit),
        "busybox",
        "cat",
        "/sys/fs/cgroup/memory/memory.limit_in_bytes",
    )
    assert container_id(d, "other") != s.id
    assert int(out) == limit
    # The standby it did not match is thrown away; the next is made like "other".
    wait_for(lambda: gone(s, d))
    nxt = one_standby(d)
    docker_ok(
        d, "run", "--name", "same", "--network", "none", "--memory", str(limit), "busybox", "true"
    )
    assert container_id(d, "same") == nxt.id
    docker_ok(d, "rm", "other", "same")


def test_a_created_container_that_took_a_standby_is_removed_whole(
    engine_factory: Callable[..., RunningDaemon],
) -> None:
    d, s = seeded(engine_factory)
    create_taking(d, s, "waits", "busybox", "sleep", "30")
    # Created, not started: as dockerd shows it.
    state = docker_ok(d, "inspect", "-f", "{{.State.Status}} {{.State.Pid}}", "waits")
    assert state.split() == ["created", "0"]
    assert os.path.exists(f"/proc/{s.init}")
    docker_ok(d, "rm", "waits")
    wait_for(lambda: gone(s, d))


def test_files_copied_in_before_the_start_are_there_when_it_runs(
    engine_factory: Callable[..., RunningDaemon], tmp_path: Path
) -> None:
    d, s = seeded(engine_factory)
    create_taking(d, s, "cp", "busybox", "cat", "/note")
    (tmp_path / "note").write_text("copied\n")
    docker_ok(d, "cp", str(tmp_path / "note"), "cp:/note")
    assert docker_ok(d, "cp", "cp:/note", "-")  # and back out (a tar)
    assert docker_ok(d, "diff", "cp").split() == ["A", "/note"]
    # Through the root mounted for the waiting init: no second overlay was put on
    # its upper directory (the kernel calls that undefined behaviour).
    assert os.path.ismount(s.rootfs)
    assert docker_ok(d, "start", "-a", "cp") == "copied\n"
    docker_ok(d, "rm", "cp")
    wait_for(lambda: gone(s, d))


def test_a_user_is_looked_up_at_the_start_after_files_were_copied_in(
    engine_factory: Callable[..., RunningDaemon], tmp_path: Path
) -> None:
    d, s = seeded(engine_factory)
    create_taking(d, s, "who", "-u", "daemon", "busybox", "sh", "-c", "id -u; echo $HOME")
    (tmp_path / "passwd").write_text("root:x:0:0::/root:/bin/sh\ndaemon:x:4242:1::/srv:/bin/sh\n")
    docker_ok(d, "cp", str(tmp_path / "passwd"), "who:/etc/passwd")
    assert docker_ok(d, "start", "-a", "who").split() == ["4242", "/srv"]
    docker_ok(d, "rm", "who")


def test_a_start_that_fails_before_init_has_its_process_ends_the_standby(
    engine_factory: Callable[..., RunningDaemon], tmp_path: Path
) -> None:
    d, s = seeded(engine_factory)
    create_taking(d, s, "nouser", "-u", "daemon", "busybox", "true")
    (tmp_path / "passwd").write_text("root:x:0:0::/root:/bin/sh\n")
    docker_ok(d, "cp", str(tmp_path / "passwd"), "nouser:/etc/passwd")
    r = docker(d, "start", "nouser")
    assert r.code != 0 and "daemon" in r.err, r
    # Its init never ran anything: it is ended, its monitor done, its root let go.
    assert not os.path.exists(f"/proc/{s.init}")
    assert not (d.root / "exec" / "runtime" / s.id).exists()
    assert not os.path.ismount(s.rootfs)
    docker_ok(d, "rm", "nouser")
    wait_for(lambda: gone(s, d))


def test_a_command_its_init_cannot_run_fails_the_start_as_dockerd_says(
    engine_factory: Callable[..., RunningDaemon],
) -> None:
    """The standby's init gets the process and cannot run it: the start fails with
    init's own message (the docker CLI exits 127), the container stays created, and
    nothing of the standby is left."""
    d, s = seeded(engine_factory)
    r = docker(d, "run", "--name", "nocmd", "--network", "none", "busybox", "/nonexistent")
    assert r.code == 127, r
    assert "/nonexistent" in r.err and "no such file or directory" in r.err, r
    assert container_id(d, "nocmd") == s.id
    state = json.loads(docker_ok(d, "inspect", "-f", "{{json .State}}", "nocmd"))
    assert (state["Status"], state["ExitCode"], state["Pid"]) == ("created", 127, 0), state
    assert "/nonexistent" in state["Error"]
    assert not os.path.exists(f"/proc/{s.init}")
    docker_ok(d, "rm", "nocmd")
    wait_for(lambda: gone(s, d))


def test_a_container_that_took_a_standby_runs_at_the_daemons_priority(
    engine_factory: Callable[..., RunningDaemon],
) -> None:
    """A standby is made at a low priority; its init and monitor take the daemon's
    when a container starts with it."""
    d, s = seeded(engine_factory)
    monitor = mon.parent_of(s.init)

    def nice_of(pid: int) -> int:
        return os.getpriority(os.PRIO_PROCESS, pid)

    assert nice_of(s.init) > nice_of(d.proc.pid) and nice_of(monitor) > nice_of(d.proc.pid)
    docker_ok(d, "run", "-d", "--name", "prio", "--network", "none", "busybox", "sleep", "30")
    assert container_id(d, "prio") == s.id
    pid = int(docker_ok(d, "inspect", "-f", "{{.State.Pid}}", "prio"))
    assert pid == s.init
    assert nice_of(pid) == nice_of(monitor) == nice_of(d.proc.pid)
    docker_ok(d, "rm", "-f", "prio")
    wait_for(lambda: gone(s, d))


def test_a_running_containers_monitor_leaves_no_spare_cgroup(
    engine_factory: Callable[..., RunningDaemon],
) -> None:
    """A pooled monitor makes a spare cgroup while it waits (cgroup v1); its
    container's create renames it into place (the monitor does not look for it
    again): none is left of the monitor of a container that runs, one that took a
    standby or one made the usual way, and each has its own cgroup."""
    if (cgroups.ROOT / "cgroup.controllers").exists():
        pytest.skip("cgroup v2 host: no spare cgroups there")
    d, s = seeded(engine_factory)
    docker_ok(d, "run", "-d", "--name", "took", "--network", "none", "busybox", "sleep", "30")
    assert container_id(d, "took") == s.id
    run = ("run", "-d", "--name", "usual", "--network", "none", "--pids-limit", "64")
    docker_ok(d, *run, "busybox", "sleep", "30")
    v1 = [h for h in cgroups.hierarchies() if not (h / "cgroup.controllers").exists()]
    for name in ("took", "usual"):
        pid = int(docker_ok(d, "inspect", "-f", "{{.State.Pid}}", name))
        monitor = mon.parent_of(pid)
        for h in v1:
            parent = h / CGROUP_PARENT
            assert (parent / container_id(d, name)).is_dir(), (h, name)
            assert not (parent / f".spare-{monitor}").exists(), (h, name)
    docker_ok(d, "rm", "-f", "took", "usual")


def test_monitors_are_given_the_cgroup_mounts_the_daemon_wrote(
    engine_factory: Callable[..., RunningDaemon],
) -> None:
    """The daemon writes its cgroup mounts once (exec root, ``cgroup-mounts``) and
    gives them to its monitors, pooled or not, so that none reads mountinfo."""
    d, s = seeded(engine_factory)
    hint = d.root / "exec" / "cgroup-mounts"
    assert hint.read_text().splitlines(keepends=True) == cgroups.mountinfo_lines()

    def given(init: int) -> bytes:
        argv = Path(f"/proc/{mon.parent_of(init)}/cmdline").read_bytes().split(b"\0")
        return argv[argv.index(b"--cgroup-mounts") + 1]

    assert given(s.init) == os.fsencode(hint)
    # Unlike the standby (a pids limit): made the usual way.
    run = ("run", "-d", "--name", "plain", "--network", "none", "--pids-limit", "64")
    docker_ok(d, *run, "busybox", "sleep", "30")
    plain = int(docker_ok(d, "inspect", "-f", "{{.State.Pid}}", "plain"))
    assert plain != s.init and given(plain) == os.fsencode(hint)
    docker_ok(d, "rm", "-f", "plain")


def test_a_start_not_yet_saved_is_adopted_by_the_next_daemon(
    engine_factory: Callable[..., RunningDaemon],
) -> None:
    """A daemon killed after init took its process and before the start was saved
    (the record put back here as it was then: created, its monitor known since the
    claim) leaves a container the next daemon finds running its process: it is
    adopted as running, and its exit reported."""
    d, s = seeded(engine_factory)
    script = "while [ ! -e /go ]; do sleep 0.05; done; exit 3"
    docker_ok(d, "run", "-d", "--name", "late", "--network", "none", "busybox", "sh", "-c", script)
    assert container_id(d, "late") == s.id
    os.kill(d.proc.pid, signal.SIGKILL)
    d.proc.wait()
    with sqlite3.connect(d.root / "data" / "skiff.db") as db:
        (text,) = db.execute("SELECT record FROM containers WHERE id = ?", (s.id,)).fetchone()
        record = json.loads(text)
        assert record["state"]["status"] == "running" and record["state"]["monitor_pid"]
        record["state"].update(status="created", pid=0)
        record["has_been_started"] = False
        db.execute("UPDATE containers SET record = ? WHERE id = ?", (json.dumps(record), s.id))
    db.close()
    d.proc = start_daemon(d.root, config=(d.root / "daemon.json").read_text()).proc
    state = json.loads(docker_ok(d, "inspect", "-f", "{{json .State}}", "late"))
    assert (state["Status"], state["Pid"]) == ("running", s.init), state
    (s.rootfs / "go").write_text("")
    assert docker_ok(d, "wait", "late").strip() == "3"
    docker_ok(d, "rm", "late")
    wait_for(lambda: gone(s, d))


def test_a_create_that_cannot_take_the_standby_leaves_nothing_of_it(
    engine_factory: Callable[..., RunningDaemon],
) -> None:
    d, s = seeded(engine_factory)
    # Nothing the standby was made with can say what "x" files are: the usual way.
    r = docker(d, "create", "--name", "odd", "--network", "none", "--log-opt", "max-file=x",
               "busybox", "true")  # fmt: skip
    if r.code == 0:
        assert container_id(d, "odd") != s.id
        docker_ok(d, "rm", "odd")
    wait_for(lambda: gone(s, d))


def test_an_update_before_the_start_lets_the_standby_go(
    engine_factory: Callable[..., RunningDaemon],
) -> None:
    d, s = seeded(engine_factory)
    create_taking(d, s, "upd", "busybox", "cat", "/sys/fs/cgroup/pids/pids.max")
    docker_ok(d, "update", "--pids-limit", "77", "upd")
    wait_for(lambda: not os.path.exists(f"/proc/{s.init}"))
    docker_ok(d, "start", "upd")
    assert docker_ok(d, "wait", "upd").strip() == "0"
    assert docker_ok(d, "logs", "upd").strip() == "77"
    docker_ok(d, "rm", "upd")


def test_a_command_that_cannot_run_fails_the_start_as_usual(
    engine_factory: Callable[..., RunningDaemon],
) -> None:
    d, s = seeded(engine_factory)
    r = docker(d, "run", "--name", "bad", "--network", "none", "busybox", "no-such-command")
    assert r.code == 127, r
    assert "executable file not found" in r.err
    assert container_id(d, "bad") == s.id
    state = docker_ok(d, "inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", "bad")
    assert state.split() == ["created", "127"]
    wait_for(lambda: not os.path.exists(f"/proc/{s.init}"))
    docker_ok(d, "rm", "bad")
    wait_for(lambda: gone(s, d))


def test_no_standby_is_left_by_a_stop_or_a_kill9(
    engine_factory: Callable[..., RunningDaemon],
) -> None:
    d, s = seeded(engine_factory)
    config = (d.root / "daemon.json").read_text()
    assert d.stop() == 0
    assert gone(s, d)

    d.proc = start_daemon(d.root, config=config).proc
    seed(d)
    taken = one_standby(d)
    docker_ok(d, "create", "--name", "later", "--network", "none", "busybox", "echo", "made")
    assert container_id(d, "later") == taken.id
    seed(d)
    s = one_standby(d)
    os.kill(d.proc.pid, signal.SIGKILL)
    d.proc.wait()
    d.proc = start_daemon(d.root, config=config).proc
    # The standby nobody took is gone; the one a created container took let go
    # (the container's start makes it the usual way).
    assert gone(s, d)
    assert not os.path.exists(f"/proc/{taken.init}")
    docker_ok(d, "start", "-a", "later")
    assert docker_ok(d, "logs", "later").strip() == "made"
    docker_ok(d, "rm", "later")
    assert d.stop() == 0
    assert not list((d.root / "data" / "containers").iterdir())
    assert str(d.root) not in Path("/proc/mounts").read_text()


def test_a_start_the_daemon_did_not_record_is_adopted_at_its_next_start(
    engine_factory: Callable[..., RunningDaemon],
) -> None:
    """Killed after a standby's init got its process but before the container was
    recorded as running: the next start finds it running and adopts it."""
    d, s = seeded(engine_factory)
    create_taking(d, s, "window", "busybox", "sh", "-c", "echo up; sleep 30")
    claimed = sqlite3.connect(d.root / "data" / "skiff.db")
    row = claimed.execute("SELECT record FROM containers WHERE id = ?", (s.id,)).fetchone()[0]
    claimed.close()
    docker_ok(d, "start", "window")
    config = (d.root / "daemon.json").read_text()
    os.kill(d.proc.pid, signal.SIGKILL)
    d.proc.wait()
    with sqlite3.connect(d.root / "data" / "skiff.db") as db:  # back to the claim's row
        db.execute("UPDATE containers SET record = ? WHERE id = ?", (row, s.id))
    db.close()
    d.proc = start_daemon(d.root, config=config).proc
    state = docker_ok(d, "inspect", "-f", "{{.State.Status}} {{.State.Pid}}", "window").split()
    assert state == ["running", str(s.init)]
    assert docker_ok(d, "logs", "window") == "up\n"
    docker_ok(d, "kill", "window")
    assert docker_ok(d, "wait", "window").strip() == "137"
    docker_ok(d, "rm", "window")


def test_disabled_in_the_config_no_standby_is_made(
    engine_factory: Callable[..., RunningDaemon],
) -> None:
    d = engine_factory({"standby-containers": False})
    seed(d)
    seed(d)
    time.sleep(0.5)
    assert standbys(d) == []
