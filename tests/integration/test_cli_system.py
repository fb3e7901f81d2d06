"""The skiff CLI's system commands, contexts, completion, the embedded daemon and error
handling, against real daemons."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.integration.test_cli_containers import SKIFF, columns, container, ok, skiff, uname
from tests.support.daemon import RunningDaemon
from tests.support.engine import DOCKER, docker_ok

pytestmark = pytest.mark.root


def test_info(engine: RunningDaemon) -> None:
    out = ok(engine, "info")
    assert out.startswith("Client:\n Version:")
    assert "\nServer:\n Containers: " in out and "\n Storage Driver: overlay2\n" in out
    assert ok(engine, "system", "info", "--format", "{{.OSType}}") == "linux\n"
    info = json.loads(ok(engine, "info", "--format", "json"))
    assert info["OSType"] == "linux" and "NCPU" in info
    if DOCKER is not None:
        fmt = "{{.OSType}} {{.Driver}} {{.NCPU}} {{json .Plugins.Volume}} {{.ServerVersion}}"
        assert ok(engine, "info", "-f", fmt) == docker_ok(engine, "info", "-f", fmt)


def test_df(engine: RunningDaemon) -> None:
    rows = [columns(line) for line in ok(engine, "system", "df").splitlines()]
    assert rows[0] == ["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"]
    assert [r[0] for r in rows[1:]] == ["Images", "Containers", "Local Volumes", "Build Cache"]
    if DOCKER is not None:
        fmt = "{{.Type}} {{.TotalCount}} {{.Size}}"
        assert ok(engine, "system", "df", "--format", fmt) == docker_ok(
            engine, "system", "df", "--format", fmt
        )
    verbose = ok(engine, "system", "df", "-v")
    assert "Images space usage:" in verbose and "Containers space usage:" in verbose


def test_system_prune(engine_factory: Callable[..., RunningDaemon]) -> None:
    daemon = engine_factory()
    ok(daemon, "create", "--name", "stopped-one", "busybox", "true")
    ok(daemon, "run", "-d", "--name", "running-one", "busybox", "sleep", "300")
    ok(daemon, "tag", "busybox", "extra:tag")
    try:
        r = skiff(daemon, "system", "prune", input="n\n")
        assert "WARNING! This will remove:" in r.out and "all stopped containers" in r.out
        assert ok(daemon, "ps", "-aq", "--filter", "name=stopped-one") != ""
        out = ok(daemon, "system", "prune", "-f")
        assert "Deleted Containers:" in out and out.rstrip().splitlines()[-1].startswith(
            "Total reclaimed space:"
        )
        assert ok(daemon, "ps", "-aq", "--filter", "name=stopped-one") == ""
        assert ok(daemon, "ps", "-q", "--filter", "name=running-one") != ""
        assert "busybox" in ok(daemon, "images", "--format", "{{.Repository}}")
        ok(daemon, "rm", "-f", "running-one")
        out = ok(daemon, "system", "prune", "-af")
        assert "Deleted Images:" in out
        assert ok(daemon, "images", "-q") == ""
    finally:
        skiff(daemon, "rm", "-f", "running-one", "stopped-one")


def test_events(engine: RunningDaemon) -> None:
    start = time.time()
    with container(engine, "busybox", "true") as name:
        ok(engine, "wait", name)
    until = time.time() + 1
    args = (
        "--since",
        f"{start - 1:.3f}",
        "--until",
        f"{until:.3f}",
        "--filter",
        f"container={name}",
    )
    lines = ok(engine, "events", *args).splitlines()
    actions = [line.split()[2] for line in lines]
    assert actions[:3] == ["create", "start", "die"] and "destroy" in actions
    assert lines[0].split()[1] == "container" and f"name={name}" in lines[0]
    assert ok(engine, "system", "events", *args, "--format", "{{.Action}}").split() == actions
    first = json.loads(ok(engine, "events", *args, "--format", "json").splitlines()[0])
    assert first["Action"] == "create" and first["Actor"]["Attributes"]["name"] == name
    if DOCKER is not None:
        assert ok(engine, "events", *args) == docker_ok(engine, "events", *args)
    # relative --since, and a live stream ended by Ctrl-C: no traceback, docker's 130
    proc = subprocess.Popen(
        [*SKIFF, "events", "--since", "10m"],
        env=engine.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(1.5)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 130 and "Traceback" not in err
    assert "container create" in out


def test_contexts(engine: RunningDaemon, tmp_path: Path) -> None:
    config = tmp_path / "docker-config"
    env = {k: v for k, v in os.environ.items() if k not in ("DOCKER_HOST", "SKIFF_HOST")}
    env["DOCKER_CONFIG"] = str(config)
    name = uname("ctx")

    def run(*args: str) -> str:
        return ok(engine, *args, env=env)

    assert run("context", "show") == "default\n"
    assert (
        run(
            "context",
            "create",
            name,
            "--description",
            "a test daemon",
            "--docker",
            f"host={engine.host}",
        )
        == f"{name}\n"
    )
    ls = [columns(line) for line in run("context", "ls").splitlines()]
    assert ls[0] == ["NAME", "DESCRIPTION", "DOCKER ENDPOINT", "ERROR"]
    assert [name, "a test daemon", engine.host] in ls
    assert run("context", "ls", "-q").split() == ["default", name]
    assert "Server: Skiff Engine" in run("--context", name, "version")
    assert run("context", "use", name) == f"{name}\n"
    assert json.loads((config / "config.json").read_text())["currentContext"] == name
    assert run("context", "show") == f"{name}\n"
    assert f"{name} *" in run("context", "ls")
    assert run("ps", "--format", "{{.ID}}") == ok(engine, "ps", "--format", "{{.ID}}")
    meta = json.loads(run("context", "inspect", name))[0]
    assert meta["Name"] == name and meta["Endpoints"]["docker"]["Host"] == engine.host
    assert run("context", "inspect", "-f", "{{.Endpoints.docker.Host}}", name) == f"{engine.host}\n"
    if DOCKER is not None:  # docker's CLI reads the same store
        out = subprocess.run(
            [DOCKER, "context", "ls", "--format", "{{.Name}} {{.DockerEndpoint}}"],
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert f"{name} {engine.host}" in out.stdout
    # -H and DOCKER_HOST still win over the current context
    bad = "unix:///nonexistent/skiff.sock"
    assert skiff(engine, "-H", bad, "ps", env=env).code == 1
    assert skiff(engine, "ps", env={**env, "DOCKER_HOST": bad}).code == 1
    r = skiff(engine, "context", "rm", name, env=env)
    assert r.code == 125 and "in use" in r.err
    assert run("context", "use", "default") == "default\n"
    assert run("context", "rm", name) == f"{name}\n"
    r = skiff(engine, "--context", name, "ps", env=env)
    assert r.code == 125 and f'context "{name}" does not exist' in r.err
    assert (
        skiff(engine, "context", "create", "bad name", "--docker", "host=unix:///x", env=env).code
        == 125
    )


def test_completion(engine: RunningDaemon) -> None:
    for shell in ("bash", "zsh"):
        script = ok(engine, "completion", shell)
        assert "_SKIFF_COMPLETE" in script
    env = {
        **engine.env(),
        "_SKIFF_COMPLETE": "bash_complete",
        "COMP_WORDS": "skiff ps --no",
        "COMP_CWORD": "2",
    }
    proc = subprocess.run(SKIFF, env=env, capture_output=True, text=True, timeout=30)
    assert "--no-trunc" in proc.stdout
    env.update(COMP_WORDS="skiff ru", COMP_CWORD="1")
    proc = subprocess.run(SKIFF, env=env, capture_output=True, text=True, timeout=30)
    assert "plain,run" in proc.stdout.split()


def test_errors_are_one_line(engine: RunningDaemon) -> None:
    for args, code, text in (
        (("start", "no-such-container-x"), 1, "No such container"),
        (("logs", "no-such-container-x"), 125, "No such container"),
        (("run", "--rm", "busybox", "--bad"), 127, "executable file not found"),
        (("run", "--no-such-flag", "busybox"), 125, "No such option"),
        (("ps", "--filter", "nonsense"), 125, "bad format of filter"),
        (("inspect", "-f", "{{.Nope", "busybox"), 125, "template"),
        (("rmi", "no-such-image-x"), 1, "No such image"),
    ):
        r = skiff(engine, *args)
        assert r.code == code, (args, r)
        assert text in r.err and len(r.err.strip().splitlines()) <= 2, (args, r.err)
    r = skiff(engine, "-H", "unix:///nonexistent/skiff.sock", "ps")
    assert r.code == 1 and r.err.startswith(
        "Cannot connect to the Skiff daemon at unix:///nonexistent"
    )
    # a reader that goes away (skiff images | head -0): quiet, no traceback
    with container(engine, "busybox", "sleep", "300"):
        proc = subprocess.Popen(
            [*SKIFF, "inspect", "busybox"],
            env=engine.env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert proc.stdout is not None and proc.stderr is not None
        proc.stdout.close()
        err = proc.stderr.read().decode()
        proc.wait(timeout=30)
        assert "Traceback" not in err and "Broken pipe" not in err


def test_embedded_daemon_starts_on_the_default_socket(tmp_path: Path) -> None:
    """As root with no daemon on the default socket, skiff starts skiffd (once), says
    where it logs, and goes on. Run in a private mount namespace whose /run/skiff,
    /var/lib/skiff, /var/log/skiff and /etc/skiff are fresh tmpfs mounts."""
    script = f"""
set -e
for d in /run/skiff /var/lib/skiff /var/log/skiff /etc/skiff; do
  mkdir -p $d && mount -t tmpfs tmpfs $d
done
stop() {{
  pid=$(cat /run/skiff/skiffd.pid 2>/dev/null) || return 0
  kill -TERM "$pid"
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  kill -KILL "$pid"
}}
trap stop EXIT
{" ".join(SKIFF)} ps > {tmp_path}/first.out 2> {tmp_path}/first.err
{" ".join(SKIFF)} version > {tmp_path}/second.out 2> {tmp_path}/second.err
grep -c 'API listen on /run/skiff/skiff.sock' /var/log/skiff/skiffd.log > {tmp_path}/log.count
"""
    unset = ("DOCKER_HOST", "SKIFF_HOST", "SKIFF_NO_EMBEDDED_DAEMON")
    env = {k: v for k, v in os.environ.items() if k not in unset}
    env["DOCKER_CONFIG"] = str(tmp_path / "cfg")
    proc = subprocess.run(
        ["unshare", "-m", "--propagation", "private", "bash", "-c", script],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "first.out").read_text().startswith("CONTAINER ID")
    assert (tmp_path / "first.err").read_text() == (
        "Started skiffd (no daemon was running); it logs to /var/log/skiff/skiffd.log\n"
    )
    assert "Server: Skiff Engine" in (tmp_path / "second.out").read_text()
    assert (tmp_path / "second.err").read_text() == ""
    assert (tmp_path / "log.count").read_text().strip() == "1"


def test_management_groups(engine: RunningDaemon) -> None:
    """docker's `container …` and `image …` names for the same commands."""
    with container(engine, "-l", "grp=1", "busybox", "sleep", "300") as name:
        assert (
            ok(engine, "container", "ls", "--filter", "label=grp=1", "--format", "{{.Names}}")
            == f"{name}\n"
        )
        cid = ok(engine, "container", "inspect", "-f", "{{.Id}}", name)
        assert ok(engine, "inspect", "-f", "{{.Id}}", name) == cid
        r = skiff(engine, "container", "inspect", "busybox")
        assert r.code == 1 and "No such container: busybox" in r.err
    image_id = ok(engine, "image", "inspect", "-f", "{{.Id}}", "busybox")
    assert image_id.startswith("sha256:")
    assert image_id[7:19] in ok(engine, "image", "ls", "busybox")
    assert "Total reclaimed space:" in ok(
        engine, "container", "prune", "-f", "--filter", "label=nothing-has-this"
    )
