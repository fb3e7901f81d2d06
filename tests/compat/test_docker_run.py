"""The docker CLI running containers on skiffd: run, ps, logs, stop, kill, restart,
rm, wait, inspect, rename, pause — outputs and exit codes as docker gives them."""

from __future__ import annotations

import json
import os
import secrets
import time

import pytest

from tests.support.daemon import RunningDaemon
from tests.support.engine import DOCKER, container, docker, docker_ok, uname

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(DOCKER is None, reason="the docker CLI is not installed"),
]


def test_run_rm_prints_output_and_returns_exit_code(engine: RunningDaemon) -> None:
    r = docker(
        engine,
        "run",
        "--rm",
        "--network",
        "none",
        "busybox",
        "sh",
        "-c",
        "echo out; echo err >&2; exit 7",
    )
    assert r.code == 7
    assert r.out == "out\n"
    assert "err\n" in r.err


def test_run_not_found_and_not_executable_exit_codes(engine: RunningDaemon) -> None:
    missing = docker(engine, "run", "--rm", "busybox", "no-such-command")
    assert missing.code == 127
    assert "executable file not found" in missing.err
    denied = docker(engine, "run", "--rm", "busybox", "/etc/passwd")
    assert denied.code == 126
    # --rm containers that could not start are gone.
    assert docker_ok(engine, "ps", "-aq", "--filter", "status=created") == ""


def test_run_unknown_image_fails_with_125(engine: RunningDaemon) -> None:
    r = docker(engine, "run", "--rm", "--pull", "never", "no-such-image-" + secrets.token_hex(3))
    assert r.code == 125
    assert "No such image" in r.err


def test_env_workdir_user_hostname(engine: RunningDaemon) -> None:
    out = docker_ok(
        engine,
        "run",
        "--rm",
        "-e",
        "FOO=bar",
        "-w",
        "/tmp",
        "-u",
        "1000:1000",
        "--hostname",
        "boat",
        "busybox",
        "sh",
        "-c",
        'echo "$FOO $(pwd) $(id -u):$(id -g) $(hostname) $HOME"',
    )
    assert out.split() == ["bar", "/tmp", "1000:1000", "boat", "/"]


def test_stdin_is_passed_with_i(engine: RunningDaemon) -> None:
    out = docker_ok(
        engine, "run", "--rm", "-i", "busybox", "sh", "-c", "tr a-z A-Z", input="hello\nworld\n"
    )
    assert out == "HELLO\nWORLD\n"


def test_detached_lifecycle_ps_logs_stop_rm(engine: RunningDaemon) -> None:
    name = uname("life")
    cid = docker_ok(
        engine,
        "run",
        "-d",
        "--name",
        name,
        "--label",
        f"suite={name}",
        "busybox",
        "sh",
        "-c",
        "trap 'echo bye; exit 0' TERM; i=0; while true; do echo line $i; i=$((i+1)); sleep 0.1; done",
    ).strip()
    assert len(cid) == 64
    try:
        ps = docker_ok(
            engine, "ps", "--filter", f"label=suite={name}", "--format", "{{.Names}} {{.Status}}"
        )
        assert ps.startswith(f"{name} Up ")
        deadline = time.monotonic() + 10
        while "line 3" not in docker_ok(engine, "logs", name):
            assert time.monotonic() < deadline
            time.sleep(0.1)
        tail = docker_ok(engine, "logs", "--tail", "2", name).splitlines()
        assert len(tail) == 2 and tail[0].startswith("line ")
        docker_ok(engine, "stop", "-t", "5", name)
        state = json.loads(docker_ok(engine, "inspect", "--format", "{{json .State}}", name))
        assert state["Status"] == "exited" and state["ExitCode"] == 0 and not state["Running"]
        assert docker_ok(engine, "logs", "--tail", "1", name) == "bye\n"
        assert docker_ok(engine, "ps", "-q", "--filter", f"name={name}") == ""
        ps_all = docker_ok(
            engine, "ps", "-a", "--filter", f"name={name}", "--format", "{{.Status}}"
        )
        assert ps_all.startswith("Exited (0)")
    finally:
        docker(engine, "rm", "-f", name)
    r = docker(engine, "inspect", name)
    assert r.code == 1 and "No such object" in r.err


def test_logs_follow_ends_with_the_container(engine: RunningDaemon) -> None:
    with container(
        engine,
        "busybox",
        "sh",
        "-c",
        "for i in 1 2 3; do echo n$i; sleep 0.2; done",
        prefix="follow",
    ) as name:
        out = docker_ok(engine, "logs", "-f", name, timeout=20)
        assert out.split() == ["n1", "n2", "n3"]
        assert docker_ok(engine, "wait", name).strip() == "0"


def test_kill_wait_restart_rm_force(engine: RunningDaemon) -> None:
    with container(engine, "busybox", "sleep", "60", prefix="kill") as name:
        docker_ok(engine, "kill", name)
        assert docker_ok(engine, "wait", name).strip() == "137"
        docker_ok(engine, "restart", "-t", "1", name)
        assert docker_ok(engine, "inspect", "-f", "{{.State.Running}}", name).strip() == "true"
        r = docker(engine, "rm", name)
        assert r.code == 1 and "stop the container before removing or force remove" in r.err
        docker_ok(engine, "rm", "-f", name)
        assert docker(engine, "inspect", name).code == 1


def test_kill_of_stopped_container_is_409(engine: RunningDaemon) -> None:
    name = uname("dead")
    docker_ok(engine, "create", "--name", name, "busybox", "true")
    try:
        r = docker(engine, "kill", name)
        assert r.code == 1 and "is not running" in r.err
    finally:
        docker(engine, "rm", "-f", name)


def test_name_in_use_rename_and_pause(engine: RunningDaemon) -> None:
    name, other = uname("n"), uname("m")
    docker_ok(engine, "run", "-d", "--name", name, "busybox", "sleep", "60")
    try:
        r = docker(engine, "run", "-d", "--name", name, "busybox", "true")
        assert r.code == 125 and "is already in use" in r.err
        docker_ok(engine, "rename", name, other)
        assert docker_ok(engine, "inspect", "-f", "{{.Name}}", other).strip() == "/" + other
        docker_ok(engine, "pause", other)
        assert docker_ok(engine, "inspect", "-f", "{{.State.Status}}", other).strip() == "paused"
        docker_ok(engine, "unpause", other)
        assert docker_ok(engine, "inspect", "-f", "{{.State.Status}}", other).strip() == "running"
    finally:
        docker(engine, "rm", "-f", name)
        docker(engine, "rm", "-f", other)


def test_read_only_root_and_cap_drop(engine: RunningDaemon) -> None:
    r = docker(engine, "run", "--rm", "--read-only", "busybox", "touch", "/x")
    assert r.code == 1 and "Read-only file system" in r.err
    # Without CAP_CHOWN, root cannot chown a file it does not own... nor any file.
    r = docker(
        engine,
        "run",
        "--rm",
        "--cap-drop",
        "CHOWN",
        "busybox",
        "sh",
        "-c",
        "touch /f && chown 5 /f",
    )
    assert r.code == 1 and "Operation not permitted" in r.err


def test_memory_and_pids_limits_reach_the_cgroup(engine: RunningDaemon) -> None:
    out = docker_ok(
        engine, "run", "--rm", "--memory", "64m", "--pids-limit", "33", "probe:latest", "/probe"
    )
    info = json.loads(out)
    text = json.dumps(info)
    assert "67108864" in text
    assert "33" in text


def test_inspect_fields(engine: RunningDaemon) -> None:
    name = uname("insp")
    docker_ok(
        engine,
        "create",
        "--name",
        name,
        "-e",
        "A=1",
        "--label",
        "k=v",
        "--restart",
        "on-failure:2",
        "busybox",
        "echo",
        "hi",
    )
    try:
        info = json.loads(docker_ok(engine, "inspect", name))[0]
        assert info["Name"] == "/" + name
        assert info["Path"] == "echo" and info["Args"] == ["hi"]
        assert info["State"]["Status"] == "created"
        assert info["Config"]["Image"] == "busybox"
        assert "A=1" in info["Config"]["Env"]
        assert info["Config"]["Labels"]["k"] == "v"
        assert info["HostConfig"]["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 2}
        assert info["Image"].startswith("sha256:")
        assert info["LogPath"].endswith("-json.log")
    finally:
        docker(engine, "rm", "-f", name)


def test_restart_policy_on_failure_counts(engine: RunningDaemon) -> None:
    with container(
        engine, "--restart", "on-failure:2", "busybox", "sh", "-c", "exit 3", prefix="rp"
    ) as name:
        deadline = time.monotonic() + 20
        while True:
            state = docker_ok(
                engine, "inspect", "-f", "{{.State.Status}} {{.RestartCount}}", name
            ).split()
            if state == ["exited", "2"]:
                break
            assert time.monotonic() < deadline, state
            time.sleep(0.1)


def test_health_check_goes_healthy_then_unhealthy(engine: RunningDaemon) -> None:
    with container(
        engine,
        "--health-cmd",
        "test -f /tmp/ok",
        "--health-interval",
        "200ms",
        "--health-retries",
        "2",
        "busybox",
        "sh",
        "-c",
        "touch /tmp/ok; sleep 1.5; rm /tmp/ok; sleep 60",
        prefix="health",
    ) as name:
        seen = []
        deadline = time.monotonic() + 20
        while "unhealthy" not in seen:
            assert time.monotonic() < deadline, seen
            status = docker_ok(engine, "inspect", "-f", "{{.State.Health.Status}}", name).strip()
            if not seen or seen[-1] != status:
                seen.append(status)
            time.sleep(0.1)
        assert "healthy" in seen
        assert seen.index("healthy") < seen.index("unhealthy")
        ps = docker_ok(engine, "ps", "--filter", f"name={name}", "--format", "{{.Status}}")
        assert "(unhealthy)" in ps
        info = json.loads(docker_ok(engine, "inspect", "-f", "{{json .State.Health}}", name))
        assert info["FailingStreak"] >= 2 and info["Log"][-1]["ExitCode"] == 1


def test_privileged_gets_the_hosts_capabilities(engine: RunningDaemon) -> None:
    out = docker_ok(engine, "run", "--rm", "--privileged", "probe:latest", "/probe")
    caps = json.loads(out)["caps"]
    text = json.dumps(caps)
    assert "CAP_SYS_ADMIN" in text and "CAP_NET_ADMIN" in text


def test_kill_returns_once_the_container_is_down(engine: RunningDaemon) -> None:
    with container(engine, "--restart", "always", "busybox", "sleep", "60", prefix="k9") as name:
        docker_ok(engine, "kill", name)
        # Down at once, and a killed container is not restarted (as dockerd).
        status = docker_ok(engine, "inspect", "-f", "{{.State.Status}}", name).strip()
        assert status == "exited"
        time.sleep(0.5)
        assert docker_ok(engine, "inspect", "-f", "{{.RestartCount}}", name).strip() == "0"


def _root_mount(engine: RunningDaemon, *run_flags: str) -> dict[str, list[str]]:
    """The overlay options of a container's root, as its own mountinfo shows them."""
    line = docker_ok(
        engine,
        "run",
        *run_flags,
        "--network",
        "none",
        "busybox",
        "grep",
        " / / ",
        "/proc/self/mountinfo",
    )
    options: dict[str, list[str]] = {}
    for opt in line.split(" - ", 1)[1].split()[2].split(","):
        key, _, value = opt.partition("=")
        options.setdefault(key, []).append(value)
    return options


def _top_lower(options: dict[str, list[str]]) -> str:
    """The top lower layer: the first ``lowerdir+`` (new mount API) or the first
    of ``lowerdir``'s list."""
    if options.get("lowerdir+"):
        return options["lowerdir+"][0]
    return options["lowerdir"][0].split(":")[0]


def _volatile(options: dict[str, list[str]]) -> bool:
    # Shown as "volatile" by older kernels, "fsync=volatile" by newer ones.
    return "volatile" in options or "volatile" in options.get("fsync", [])


def test_rm_containers_skip_syncs_and_all_share_one_init_layer(engine: RunningDaemon) -> None:
    name = uname("t")
    try:
        kept = _root_mount(engine, "--name", name)
    finally:
        docker(engine, "rm", "-f", name)
    removed = _root_mount(engine, "--rm")
    # --rm: a writable layer thrown away with its container is mounted volatile
    # (no sync of the data disk when it is unmounted), as podman does.
    assert _volatile(removed) and not _volatile(kept)
    # The mount points' layer (dockerd's -init) is one layer of the daemon's, on top.
    assert _top_lower(kept) == _top_lower(removed)
    assert os.path.realpath(_top_lower(kept)) == str(engine.root / "data" / "init-layer")


def test_restart_of_an_rm_container_mounts_its_volatile_layer_again(
    engine: RunningDaemon,
) -> None:
    name = uname("t")
    docker_ok(engine, "run", "-d", "--rm", "--name", name, "busybox", "sleep", "300")
    try:
        docker_ok(engine, "exec", name, "sh", "-c", "echo kept > /data")
        docker_ok(engine, "restart", "-t", "0", name)
        state = json.loads(docker_ok(engine, "inspect", "--format", "{{json .State}}", name))
        assert state["Running"] is True
        assert docker_ok(engine, "exec", name, "cat", "/data") == "kept\n"
    finally:
        docker(engine, "rm", "-f", name)


def test_copy_and_start_right_after_an_exit_wait_for_its_clean_up(
    engine: RunningDaemon,
) -> None:
    # The exit is reported before the root is unmounted; a copy out of the stopped
    # container and a new start that come at once must still find it whole.
    for _ in range(3):
        name = uname("t")
        try:
            docker_ok(engine, "run", "--name", name, "busybox", "sh", "-c", "echo x > /f")
            assert docker(engine, "cp", f"{name}:/f", "-").code == 0
            out = docker_ok(engine, "start", "-a", name)
            assert out == ""
            assert docker_ok(engine, "diff", name).splitlines() == ["A /f"]
        finally:
            docker(engine, "rm", "-f", name)
