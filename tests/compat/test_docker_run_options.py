"""`docker run` options reaching the container, seen from inside by the probe:
mounts (binds, volumes, tmpfs, --mount), rlimits, security options, seccomp, groups,
sysctls, hosts, network modes, --init, stop signals, log rotation, attach, prune."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.support.daemon import RunningDaemon
from tests.support.engine import DOCKER, container, docker, docker_ok, uname

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(DOCKER is None, reason="the docker CLI is not installed"),
]


def probe(engine: RunningDaemon, *flags: str) -> dict[str, Any]:
    out = docker_ok(engine, "run", "--rm", *flags, "probe:latest", "/probe")
    result: dict[str, Any] = json.loads(out)
    return result


def test_rlimits_groups_nnp_sysctl_oom(engine: RunningDaemon) -> None:
    info = probe(
        engine,
        "--ulimit",
        "nofile=1000:2000",
        "--security-opt",
        "no-new-privileges",
        "--group-add",
        "1234",
        "--sysctl",
        "net.ipv4.ip_forward=1",
        "--oom-score-adj",
        "100",
    )
    assert info["rlimits"]["RLIMIT_NOFILE"] == {"soft": 1000, "hard": 2000}
    assert info["no_new_privs"] is True
    assert 1234 in info["groups"]
    assert info["oom_score_adj"] == 100
    assert info["seccomp"] == 2  # the default profile is on


def test_seccomp_default_denies_and_unconfined_allows(engine: RunningDaemon) -> None:
    denied = docker(engine, "run", "--rm", "busybox", "unshare", "-n", "true")
    assert denied.code != 0 and "Operation not permitted" in denied.err
    # With CAP_SYS_ADMIN the default profile lets unshare through (the kernel checks).
    docker_ok(engine, "run", "--rm", "--cap-add", "SYS_ADMIN", "busybox", "unshare", "-n", "true")
    assert probe(engine, "--security-opt", "seccomp=unconfined")["seccomp"] == 0


def test_cgroup_mounts_are_read_only_like_dockers(engine: RunningDaemon) -> None:
    """/sys/fs/cgroup and every hierarchy under it: read-only, nosuid, nodev, noexec
    (as runc mounts them for dockerd)."""
    script = "grep ' /sys/fs/cgroup' /proc/self/mountinfo; mkdir /sys/fs/cgroup/x 2>&1; true"
    out = docker_ok(engine, "run", "--rm", "busybox", "sh", "-c", script)
    mounts = [line.split() for line in out.splitlines() if " /sys/fs/cgroup" in line]
    assert mounts, out
    for fields in mounts:
        assert {"ro", "nosuid", "nodev", "noexec"} <= set(fields[5].split(",")), fields
    assert "Read-only file system" in out


def test_custom_seccomp_profile(engine: RunningDaemon, tmp_path: Path) -> None:
    profile = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdirat", "mkdir"], "action": "SCMP_ACT_ERRNO"}],
    }
    path = tmp_path / "profile.json"
    path.write_text(json.dumps(profile))
    r = docker(engine, "run", "--rm", "--security-opt", f"seccomp={path}", "busybox", "mkdir", "/x")
    assert r.code != 0 and "Operation not permitted" in r.err


def test_binds_volumes_tmpfs_and_mount(engine: RunningDaemon, tmp_path: Path) -> None:
    host = tmp_path / "shared"
    host.mkdir()
    (host / "in.txt").write_text("from host\n")
    vol = uname("vol")
    out = docker_ok(
        engine,
        "run",
        "--rm",
        "-v",
        f"{host}:/data",
        "-v",
        f"{vol}:/vol",
        "--tmpfs",
        "/scratch:size=1m",
        "--mount",
        f"type=bind,source={host},target=/ro,readonly",
        "busybox",
        "sh",
        "-c",
        "cat /data/in.txt; echo made > /data/out.txt; echo kept > /vol/f;"
        " grep ' /scratch ' /proc/mounts | cut -d' ' -f3;"
        " touch /ro/x 2>/dev/null || echo ro-refused",
    )
    assert out.split("\n")[:3] == ["from host", "tmpfs", "ro-refused"]
    assert (host / "out.txt").read_text() == "made\n"
    again = docker_ok(engine, "run", "--rm", "-v", f"{vol}:/vol", "busybox", "cat", "/vol/f")
    assert again == "kept\n"  # a named volume outlives its container


def test_hosts_hostname_and_network_modes(engine: RunningDaemon) -> None:
    out = docker_ok(
        engine,
        "run",
        "--rm",
        "--add-host",
        "db.example:10.1.2.3",
        "--network",
        "none",
        "busybox",
        "sh",
        "-c",
        "grep db.example /etc/hosts; ls /sys/class/net",
    )
    assert "10.1.2.3\tdb.example" in out
    assert out.split("\n")[1:] == ["lo", ""]
    host_net = docker_ok(
        engine, "run", "--rm", "--network", "host", "busybox", "ls", "/sys/class/net"
    )
    assert sorted(host_net.split()) == sorted(os.listdir("/sys/class/net"))


def test_each_container_has_a_network_namespace_of_its_own_with_loopback_up(
    engine: RunningDaemon,
) -> None:
    """As with Docker, even ``--network none`` has 127.0.0.1 (the namespaces are
    made ahead of need; each is used once)."""
    host = os.readlink("/proc/self/ns/net")
    script = "cat /sys/class/net/lo/flags; readlink /proc/self/ns/net; ping -c 1 -W 2 127.0.0.1"
    for flags in (["--network", "none"], [], ["--network", "none"]):
        out = docker_ok(engine, "run", "--rm", *flags, "busybox", "sh", "-c", script)
        lo_flags, ns, *ping = out.splitlines()
        assert int(lo_flags, 16) & 0x1, f"lo is down: {lo_flags}"
        assert "1 packets received" in "\n".join(ping), out
        assert ns.startswith("net:[") and ns != host
    # Two at once: two namespaces (an ended one's number may come back later).
    with (
        container(engine, "busybox", "sleep", "30", prefix="netns") as a,
        container(engine, "busybox", "sleep", "30", prefix="netns") as b,
    ):
        pids = [int(docker_ok(engine, "inspect", "-f", "{{.State.Pid}}", c)) for c in (a, b)]
        a_ns, b_ns = (os.readlink(f"/proc/{p}/ns/net") for p in pids)
        assert len({a_ns, b_ns, host}) == 3


def test_init_reaps_and_forwards(engine: RunningDaemon) -> None:
    out = docker_ok(
        engine, "run", "--rm", "--init", "busybox", "sh", "-c", "echo $$; cat /proc/1/cmdline"
    )
    pid, cmdline = out.split("\n", 1)
    assert pid != "1"
    assert "docker-init" in cmdline


def test_stop_signal_and_timeout(engine: RunningDaemon) -> None:
    with container(
        engine,
        "--stop-signal",
        "USR1",
        "busybox",
        "sh",
        "-c",
        "trap 'echo got-usr1; exit 9' USR1; while true; do sleep 0.1; done",
        prefix="sig",
    ) as name:
        t0 = time.monotonic()
        docker_ok(engine, "stop", name)
        assert time.monotonic() - t0 < 5
        assert docker_ok(engine, "inspect", "-f", "{{.State.ExitCode}}", name).strip() == "9"
        assert docker_ok(engine, "logs", name) == "got-usr1\n"


def test_log_rotation_by_max_size_and_max_file(engine: RunningDaemon) -> None:
    name = uname("rot")
    docker_ok(
        engine,
        "run",
        "--name",
        name,
        "--log-opt",
        "max-size=2k",
        "--log-opt",
        "max-file=3",
        "busybox",
        "sh",
        "-c",
        "i=0; while [ $i -lt 400 ]; do echo line-$i; i=$((i+1)); done",
    )
    try:
        path = Path(docker_ok(engine, "inspect", "-f", "{{.LogPath}}", name).strip())
        files = sorted(p.name for p in path.parent.glob(path.name + "*"))
        assert files == [path.name, path.name + ".1", path.name + ".2"]
        assert all(p.stat().st_size <= 2048 + 100 for p in path.parent.glob(path.name + "*"))
        lines = docker_ok(engine, "logs", name).split()
        assert lines[-1] == "line-399" and lines[0] != "line-0"
        numbers = [int(x.split("-")[1]) for x in lines]
        assert numbers == list(range(numbers[0], 400))  # nothing lost within what is kept
    finally:
        docker(engine, "rm", "-f", name)


def test_attach_to_running_container(engine: RunningDaemon) -> None:
    with container(
        engine,
        "-i",
        "busybox",
        "sh",
        "-c",
        "read a; echo got-$a; read b; echo got-$b",
        prefix="att",
    ) as name:
        proc = subprocess.run(
            [DOCKER or "docker", "attach", name],
            input="one\ntwo\n",
            capture_output=True,
            text=True,
            env=engine.env(),
            timeout=30,
        )
        assert proc.stdout == "got-one\ngot-two\n"


def test_container_prune_removes_only_stopped(engine: RunningDaemon) -> None:
    label = uname("prune")
    docker_ok(engine, "run", "--label", f"p={label}", "busybox", "true")
    running = docker_ok(
        engine, "run", "-d", "--label", f"p={label}", "busybox", "sleep", "60"
    ).strip()
    try:
        out = docker_ok(engine, "container", "prune", "-f", "--filter", f"label=p={label}")
        assert "Deleted Containers" in out
        left = docker_ok(engine, "ps", "-aq", "--no-trunc", "--filter", f"label=p={label}").split()
        assert left == [running]
    finally:
        docker(engine, "rm", "-f", running)


def test_anonymous_volume_keeps_its_data_across_restarts(engine: RunningDaemon) -> None:
    name = uname("anon")
    docker_ok(
        engine,
        "create",
        "--name",
        name,
        "-v",
        "/data",
        "busybox",
        "sh",
        "-c",
        "cat /data/f 2>/dev/null; echo run >> /data/f",
    )
    try:
        assert docker_ok(engine, "start", "-a", name) == ""
        assert docker_ok(engine, "start", "-a", name) == "run\n"
        mounts = json.loads(docker_ok(engine, "inspect", "-f", "{{json .Mounts}}", name))
        assert [m["Destination"] for m in mounts] == ["/data"]
        # The runtime's mount points (/etc/hostname, /proc, ...) stay out of the
        # container's own changes; the volume's mount point is one, as with dockerd.
        assert docker_ok(engine, "diff", name) == "A /data\n"
    finally:
        docker(engine, "rm", "-f", name)
