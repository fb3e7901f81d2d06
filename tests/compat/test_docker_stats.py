"""``docker top``, ``docker stats`` and ``docker update`` against skiffd, and
docker-py's ``stats``, ``top`` and ``update``: values read from the container's real
cgroup, limits written into it."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from tests.support.daemon import RunningDaemon
from tests.support.engine import DOCKER, docker_ok, dockerpy_client, removed_after, uname
from tests.support.engine import docker as docker_cli

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(DOCKER is None, reason="the docker CLI is not installed"),
]

MiB = 1024 * 1024


@pytest.fixture
def names(engine: RunningDaemon) -> Iterator[list[str]]:
    """Container names a test uses; each is removed afterwards."""
    with removed_after(engine) as made:
        yield made


@pytest.fixture
def client(engine: RunningDaemon) -> Iterator[docker.DockerClient]:
    with dockerpy_client(engine, version="auto") as c:
        yield c


def run(engine: RunningDaemon, names: list[str], *args: str, prefix: str = "s") -> str:
    name = uname(prefix)
    names.append(name)
    docker_ok(engine, "run", "-d", "--name", name, *args)
    return name


def cgroup_file(engine: RunningDaemon, name: str, controller: str, v1: str, v2: str) -> Path:
    """A file of the container's cgroup: ``v1`` under the controller's hierarchy on a
    v1 or hybrid host, ``v2`` in the unified hierarchy otherwise."""
    pid = docker_ok(engine, "inspect", "-f", "{{.State.Pid}}", name).strip()
    lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controller in controllers.split(","):
            return Path("/sys/fs/cgroup") / controller / path.lstrip("/") / v1
    unified = next(line.split(":", 2)[2] for line in lines if line.startswith("0::"))
    return Path("/sys/fs/cgroup") / unified.lstrip("/") / v2


def test_top_lists_the_container_processes(engine: RunningDaemon, names: list[str]) -> None:
    name = run(engine, names, "busybox", "sh", "-c", "sleep 301 & sleep 302 & wait")
    deadline = time.monotonic() + 10
    while "sleep 301" not in (out := docker_ok(engine, "top", name)):
        assert time.monotonic() < deadline, out
        time.sleep(0.05)
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["UID", "PID", "PPID"]
    assert lines[0].split()[-1] == "CMD"
    commands = [line for line in lines[1:] if line.endswith(("sleep 301", "sleep 302"))]
    assert len(commands) == 2 and len(lines) == 4
    assert all(line.split()[0] == "root" for line in commands)
    # ps arguments pass through; the PID column is found wherever it is.
    custom = docker_ok(engine, "top", name, "-o", "comm,pid").splitlines()
    assert custom[0].split() == ["COMMAND", "PID"]
    assert sorted(line.split()[0] for line in custom[1:]) == ["sh", "sleep", "sleep"]
    # Renaming a column to PID is refused, but for the pid column itself.
    assert docker_ok(engine, "top", name, "-o", "pid=PID").splitlines()[0].strip() == "PID"
    r = docker_cli(engine, "top", name, "-o", "user=PID")
    assert r.code == 1 and 'specifying "user=PID" is not allowed' in r.err
    docker_ok(engine, "kill", name)
    docker_ok(engine, "wait", name)
    r = docker_cli(engine, "top", name)
    assert r.code == 1 and "is not running" in r.err


def test_stats_no_stream(engine: RunningDaemon, names: list[str]) -> None:
    busy = run(
        engine,
        names,
        "--memory",
        "64m",
        "busybox",
        "sh",
        "-c",
        "while :; do :; done",
        prefix="busy",
    )
    idle = run(engine, names, "busybox", "sleep", "300", prefix="idle")
    out = docker_ok(
        engine,
        "stats",
        "--no-stream",
        "--format",
        "{{.Name}}|{{.CPUPerc}}|{{.MemUsage}}|{{.MemPerc}}|{{.PIDs}}",
        busy,
        idle,
    )
    rows = {line.split("|")[0]: line.split("|")[1:] for line in out.splitlines()}
    assert set(rows) == {busy, idle}
    busy_cpu = float(rows[busy][0].rstrip("%"))
    idle_cpu = float(rows[idle][0].rstrip("%"))
    # A spinning shell uses a CPU (what it gets depends on what else runs here).
    assert 10 < busy_cpu <= 100 * (os.cpu_count() or 1) + 5
    assert idle_cpu < 10
    used, limit = (part.strip() for part in rows[busy][1].split("/"))
    assert limit == "64MiB"
    assert re.fullmatch(r"[0-9.]+(B|KiB|MiB)", used), used
    assert used != "0B"
    # Without a limit: the machine's memory.
    idle_limit = rows[idle][1].split("/")[1].strip()
    assert idle_limit.endswith("GiB") or idle_limit.endswith("MiB")
    assert rows[busy][3] == "1" and rows[idle][3] == "1"
    mem = docker_ok(engine, "stats", "--no-stream", "--format", "{{.MemUsage}}", busy)
    assert mem.strip().endswith("/ 64MiB")
    # The table, as docker prints it.
    table = docker_ok(engine, "stats", "--no-stream", idle).splitlines()
    assert table[0].split()[:3] == ["CONTAINER", "ID", "NAME"]
    assert idle in table[1]


def test_update_memory_and_more_reach_the_cgroup(engine: RunningDaemon, names: list[str]) -> None:
    name = run(engine, names, "--memory", "64m", "busybox", "sleep", "300")
    limit = cgroup_file(engine, name, "memory", "memory.limit_in_bytes", "memory.max")
    assert int(limit.read_text()) == 64 * MiB
    assert docker_ok(engine, "update", "--memory", "96m", name).strip() == name
    assert int(limit.read_text()) == 96 * MiB
    assert docker_ok(engine, "inspect", "-f", "{{.HostConfig.Memory}}", name).strip() == str(
        96 * MiB
    )
    # Above memory+swap (twice the first limit) without a new swap: refused, as dockerd does.
    r = docker_cli(engine, "update", "--memory", "256m", name)
    assert r.code == 1 and "update the memoryswap at the same time" in r.err
    docker_ok(engine, "update", "--memory", "256m", "--memory-swap", "512m", name)
    assert int(limit.read_text()) == 256 * MiB
    docker_ok(engine, "update", "--pids-limit", "40", "--cpus", "0.5", "--cpu-shares", "512", name)
    pids = cgroup_file(engine, name, "pids", "pids.max", "pids.max")
    assert pids.read_text().strip() == "40"
    quota = cgroup_file(engine, name, "cpu", "cpu.cfs_quota_us", "cpu.max")
    assert quota.read_text().split()[0] == "50000"
    hc = docker_ok(
        engine,
        "inspect",
        "-f",
        "{{.HostConfig.NanoCpus}} {{.HostConfig.PidsLimit}} {{.HostConfig.CpuShares}}",
        name,
    )
    assert hc.split() == ["500000000", "40", "512"]
    r = docker_cli(engine, "update", "--memory", "1m", name)
    assert r.code == 1 and "Minimum memory limit allowed is 6MB" in r.err
    r = docker_cli(engine, "update", "--cpu-period", "5000", name)
    assert r.code == 1 and "NanoCPUs has already been set" in r.err
    # The stats see the new limit.
    mem = docker_ok(engine, "stats", "--no-stream", "--format", "{{.MemUsage}}", name)
    assert mem.strip().endswith("/ 256MiB")


def test_update_of_a_stopped_container_applies_at_start(
    engine: RunningDaemon, names: list[str]
) -> None:
    name = uname("upd")
    names.append(name)
    docker_ok(engine, "create", "--name", name, "busybox", "sleep", "300")
    docker_ok(engine, "update", "--memory", "48m", "--restart", "on-failure:3", name)
    policy = docker_ok(
        engine,
        "inspect",
        "-f",
        "{{.HostConfig.RestartPolicy.Name}}:{{.HostConfig.RestartPolicy.MaximumRetryCount}}",
        name,
    )
    assert policy.strip() == "on-failure:3"
    docker_ok(engine, "start", name)
    limit = cgroup_file(engine, name, "memory", "memory.limit_in_bytes", "memory.max")
    assert int(limit.read_text()) == 48 * MiB
    rm = uname("rm")
    docker_ok(engine, "create", "--rm", "--name", rm, "busybox", "true")
    names.append(rm)
    r = docker_cli(engine, "update", "--restart", "always", rm)
    assert r.code == 1 and "AutoRemove is enabled" in r.err


def test_docker_py_stats_top_update(
    engine: RunningDaemon, names: list[str], client: docker.DockerClient
) -> None:
    name = run(engine, names, "--memory", "32m", "busybox", "sh", "-c", "while :; do :; done")
    c = client.containers.get(name)
    stats = c.stats(stream=False)
    assert stats["id"] == c.id and stats["name"] == "/" + name
    cpu, pre = stats["cpu_stats"], stats["precpu_stats"]
    assert cpu["online_cpus"] >= 1
    assert cpu["system_cpu_usage"] > pre["system_cpu_usage"] > 0
    assert cpu["cpu_usage"]["total_usage"] > pre["cpu_usage"]["total_usage"] > 0
    assert stats["read"] > stats["preread"] > "2000"
    memory = stats["memory_stats"]
    assert 0 < memory["usage"] <= memory["limit"] == 32 * MiB
    assert isinstance(memory["stats"], dict) and memory["stats"]
    assert stats["pids_stats"]["current"] == 1
    assert "blkio_stats" in stats
    # one-shot: a single sample, no previous one.
    one = client.api.stats(name, stream=False, one_shot=True)
    assert one["preread"] == "0001-01-01T00:00:00Z"
    assert one["cpu_stats"]["cpu_usage"]["total_usage"] > 0
    # Streamed: one a second, each with the one before as precpu.
    stream = c.stats(stream=True, decode=True)
    try:
        first, second = next(stream), next(stream)
    finally:
        stream.close()
    assert second["preread"] == first["read"]
    assert second["precpu_stats"] == first["cpu_stats"]
    top = c.top()
    assert "PID" in top["Titles"]
    assert any("while" in " ".join(p) for p in top["Processes"])
    assert c.update(mem_limit="40m", memswap_limit="80m") == {"Warnings": []}
    limit = cgroup_file(engine, name, "memory", "memory.limit_in_bytes", "memory.max")
    assert int(limit.read_text()) == 40 * MiB
    c.kill()
    c.wait()
    stopped = c.stats(stream=False)
    assert stopped["read"] == "0001-01-01T00:00:00Z"
    assert stopped["name"] == "/" + name
    assert stopped["memory_stats"] == {}
