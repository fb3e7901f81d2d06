"""``docker exec`` and docker-py's ``exec_run`` against skiffd: output, exit codes,
env / workdir / user, stdin, a tty driven through a real pty, detach keys, detached
execs, failures like dockerd's, and execs ending with their container."""

from __future__ import annotations

import fcntl
import json
import os
import re
import select
import struct
import subprocess
import termios
import time
from collections.abc import Iterator

import docker
import pytest
from docker.models.containers import Container as PyContainer

from tests.support.daemon import RunningDaemon
from tests.support.engine import DOCKER, container, docker_ok, dockerpy_client, uname
from tests.support.engine import docker as docker_cli
from tests.support.terminal import Terminal

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(DOCKER is None, reason="the docker CLI is not installed"),
]


@pytest.fixture
def sleeper(engine: RunningDaemon) -> Iterator[str]:
    """A running busybox container (``sleep``), with an env var of its own; removed
    afterwards."""
    with container(engine, "-e", "FROM_RUN=1", "busybox", "sleep", "300", prefix="exec") as name:
        yield name


@pytest.fixture
def client(engine: RunningDaemon) -> Iterator[docker.DockerClient]:
    with dockerpy_client(engine, version="auto") as c:
        yield c


class Pty(Terminal):
    """A command on a real pseudo-terminal (the docker CLI needs a terminal for -t)."""

    def __init__(self, argv: list[str], env: dict[str, str], rows: int = 30, cols: int = 100):
        self.master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        self.proc = subprocess.Popen(
            argv, stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True
        )
        os.close(slave)
        self.output = b""

    def expect(self, pattern: bytes, timeout: float = 15) -> bytes:
        deadline = time.monotonic() + timeout
        while pattern not in self.output:
            left = deadline - time.monotonic()
            assert left > 0, f"timed out waiting for {pattern!r}; got {self.output!r}"
            if not self._read(left):
                break
        assert pattern in self.output, f"{pattern!r} not in {self.output!r}"
        return self.output

    def wait(self, timeout: float = 20) -> int:
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None:
            assert time.monotonic() < deadline, f"still running; output {self.output!r}"
            self._read(0.1)
        while self._read(0.05) and select.select([self.master], [], [], 0)[0]:
            pass
        return self.proc.returncode


def test_exec_output_and_exit_code(engine: RunningDaemon, sleeper: str) -> None:
    r = docker_cli(engine, "exec", sleeper, "sh", "-c", "echo out; echo err >&2; exit 3")
    assert r.code == 3
    assert r.out == "out\n"
    assert r.err == "err\n"
    assert docker_ok(engine, "exec", sleeper, "echo", "hello", "world") == "hello world\n"


def test_exec_env_workdir_user(engine: RunningDaemon, sleeper: str) -> None:
    out = docker_ok(
        engine,
        "exec",
        "-e",
        "FOO=bar",
        "-w",
        "/tmp",
        "-u",
        "1000:1000",
        sleeper,
        "sh",
        "-c",
        'echo "$FOO $(pwd) $(id -u):$(id -g) $HOME $FROM_RUN"',
    )
    assert out.split() == ["bar", "/tmp", "1000:1000", "/", "1"]
    # By default: the container's user (root), its working dir, its env, no TERM.
    out = docker_ok(
        engine, "exec", sleeper, "sh", "-c", 'echo "$(id -u) $(pwd) $HOME ${TERM:-none}"'
    )
    assert out.split() == ["0", "/", "/root", "none"]
    env = docker_ok(engine, "exec", sleeper, "env").splitlines()
    assert "FROM_RUN=1" in env
    assert any(line.startswith("PATH=") for line in env)
    assert any(line.startswith("HOSTNAME=") for line in env)
    # Users by name, from the container's passwd.
    assert docker_ok(engine, "exec", "-u", "nobody", sleeper, "id", "-un") == "nobody\n"
    r = docker_cli(engine, "exec", "-u", "no-such-user", sleeper, "true")
    assert r.code != 0 and "unable to find user no-such-user" in r.err


def test_exec_stdin_with_i(engine: RunningDaemon, sleeper: str) -> None:
    out = docker_ok(engine, "exec", "-i", sleeper, "tr", "a-z", "A-Z", input="hello\nworld\n")
    assert out == "HELLO\nWORLD\n"
    # The end of stdin reaches the process: cat ends, and a command after it runs.
    out = docker_ok(engine, "exec", "-i", sleeper, "sh", "-c", "cat; echo done", input="x\n")
    assert out == "x\ndone\n"


def test_exec_tty_through_a_pty(engine: RunningDaemon, sleeper: str) -> None:
    assert DOCKER is not None
    script = "tty; echo TERM=$TERM; stty size; echo READY; read line; echo got-$line; exit 4"
    pty = Pty([DOCKER, "exec", "-it", sleeper, "sh", "-c", script], engine.env(), 33, 111)
    try:
        pty.expect(b"READY")
        pty.send(b"hello\r")
        pty.expect(b"got-hello")
        code = pty.wait()
    finally:
        pty.close()
    # The CLI's exit code is the ExitCode of GET /exec/{id}/json.
    assert code == 4, pty.output
    text = pty.output.decode(errors="replace")
    assert re.search(r"/dev/pts/\d+", text), text
    assert "TERM=xterm" in text
    assert "33 111" in text
    # The exec's events, with its exit code.
    events = docker_ok(
        engine,
        "events",
        "--since",
        "2m",
        "--until",
        str(int(time.time()) + 1),
        "--filter",
        f"container={sleeper}",
        "--filter",
        "event=exec_die",
        "--format",
        "{{.Actor.Attributes.exitCode}}",
    )
    assert "4" in events.split()


def test_exec_detach_keys_leave_the_process_running(engine: RunningDaemon, sleeper: str) -> None:
    assert DOCKER is not None
    pty = Pty(
        [DOCKER, "exec", "-it", sleeper, "sh", "-c", "echo READY; exec sleep 77"], engine.env()
    )
    try:
        pty.expect(b"READY")
        pty.send(b"\x10\x11")  # ctrl-p ctrl-q
        pty.expect(b"read escape sequence")
        pty.wait()
    finally:
        pty.close()
    top = docker_ok(engine, "top", sleeper)
    assert "sleep 77" in top


def test_exec_detached(engine: RunningDaemon, sleeper: str) -> None:
    assert docker_ok(engine, "exec", "-d", sleeper, "sh", "-c", "echo hi > /tmp/mark") == ""
    deadline = time.monotonic() + 10
    while docker_cli(engine, "exec", sleeper, "cat", "/tmp/mark").out != "hi\n":
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_exec_command_not_found_or_not_executable(engine: RunningDaemon, sleeper: str) -> None:
    missing = docker_cli(engine, "exec", sleeper, "no-such-command")
    assert missing.code == 127
    assert "executable file not found" in missing.out + missing.err
    denied = docker_cli(engine, "exec", sleeper, "/etc/passwd")
    assert denied.code == 126
    assert "permission denied" in (denied.out + denied.err).lower()
    nodir = docker_cli(engine, "exec", "-w", "/no/such/dir", sleeper, "pwd")
    assert nodir.code == 127


def test_exec_in_a_stopped_or_paused_container_fails(engine: RunningDaemon) -> None:
    name = uname("stopped")
    docker_ok(engine, "create", "--name", name, "busybox", "sleep", "300")
    try:
        r = docker_cli(engine, "exec", name, "true")
        assert r.code == 1
        assert re.search(r"container [0-9a-f]{64} is not running", r.err), r.err
        docker_ok(engine, "start", name)
        docker_ok(engine, "pause", name)
        r = docker_cli(engine, "exec", name, "true")
        assert r.code == 1 and f"Container {name} is paused" in r.err
        docker_ok(engine, "unpause", name)
        assert docker_ok(engine, "exec", name, "echo", "ok") == "ok\n"
        docker_ok(engine, "kill", name)
        docker_ok(engine, "wait", name)
        r = docker_cli(engine, "exec", name, "true")
        assert r.code == 1 and "is not running" in r.err
    finally:
        docker_cli(engine, "rm", "-f", name)
    r = docker_cli(engine, "exec", name, "true")
    assert r.code == 1 and "No such container" in r.err


def test_exec_ends_with_its_container(engine: RunningDaemon, sleeper: str) -> None:
    assert DOCKER is not None
    proc = subprocess.Popen(
        [DOCKER, "exec", sleeper, "sh", "-c", "echo started; sleep 200"],
        stdout=subprocess.PIPE,
        env=engine.env(),
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == b"started\n"
        started = time.monotonic()
        docker_ok(engine, "kill", sleeper)
        assert proc.wait(15) == 137
        assert time.monotonic() - started < 10
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_exec_privileged_gets_every_capability(engine: RunningDaemon, sleeper: str) -> None:
    def cap_eff(*flags: str) -> int:
        out = docker_ok(engine, "exec", *flags, sleeper, "grep", "CapEff", "/proc/self/status")
        return int(out.split()[1], 16)

    default, privileged = cap_eff(), cap_eff("--privileged")
    assert default != 0
    assert privileged & default == default and privileged > default
    assert cap_eff("-u", "1000") == 0


def test_docker_py_exec_run(
    engine: RunningDaemon, sleeper: str, client: docker.DockerClient
) -> None:
    c: PyContainer = client.containers.get(sleeper)
    script = "echo out; echo err >&2; exit 2"
    result = c.exec_run(["sh", "-c", script])
    assert result.exit_code == 2
    assert sorted(result.output.decode().split()) == ["err", "out"]
    result = c.exec_run(["sh", "-c", script], demux=True)
    assert result.exit_code == 2
    assert result.output == (b"out\n", b"err\n")
    streamed = c.exec_run(["sh", "-c", "for i in 1 2 3; do echo $i; sleep 0.05; done"], stream=True)
    assert b"".join(streamed.output) == b"1\n2\n3\n"
    streamed = c.exec_run(["sh", "-c", "echo a; sleep 0.05; echo b >&2"], stream=True, demux=True)
    assert list(streamed.output) == [(b"a\n", None), (None, b"b\n")]
    result = c.exec_run("tty", tty=True)
    assert result.exit_code == 0 and result.output.startswith(b"/dev/pts/")
    result = c.exec_run(
        ["sh", "-c", 'echo "$A $(pwd) $(id -un)"'],
        environment={"A": "1"},
        workdir="/etc",
        user="nobody",
    )
    assert result == (0, b"1 /etc nobody\n")
    detached = c.exec_run(["sh", "-c", "sleep 0.2"], detach=True)
    assert detached.exit_code is None


def test_docker_py_exec_inspect_and_errors(
    engine: RunningDaemon, sleeper: str, client: docker.DockerClient
) -> None:
    api = client.api
    cid = client.containers.get(sleeper).id
    exec_id = api.exec_create(sleeper, ["sh", "-c", "exit 5"], privileged=True, user="nobody")["Id"]
    before = api.exec_inspect(exec_id)
    assert before["ID"] == exec_id
    assert before["Running"] is False and before["ExitCode"] is None
    assert before["ContainerID"] == cid
    assert before["ProcessConfig"] == {
        "tty": False,
        "entrypoint": "sh",
        "arguments": ["-c", "exit 5"],
        "privileged": True,
        "user": "nobody",
    }
    assert before["OpenStdout"] and before["OpenStderr"] and not before["OpenStdin"]
    assert exec_id in (api.inspect_container(sleeper)["ExecIDs"] or [])
    assert api.exec_start(exec_id) == b""
    after = api.exec_inspect(exec_id)
    assert after["ExitCode"] == 5 and after["Running"] is False and after["Pid"] > 0
    assert exec_id not in (api.inspect_container(sleeper)["ExecIDs"] or [])
    with pytest.raises(docker.errors.APIError) as err:
        api.exec_start(exec_id)
    assert err.value.status_code == 409 and "has already run" in str(err.value)
    with pytest.raises(docker.errors.NotFound):
        api.exec_inspect("0" * 64)
    with pytest.raises(docker.errors.APIError) as err:
        api.exec_create(sleeper, [])
    assert err.value.status_code == 400 and "No exec command specified" in str(err.value)
    # A running exec, seen running, then its end.
    exec_id = api.exec_create(sleeper, ["sleep", "0.5"])["Id"]
    api.exec_start(exec_id, detach=True)
    running = api.exec_inspect(exec_id)
    assert running["Running"] is True and running["Pid"] > 0
    assert str(running["Pid"]) in json.dumps(api.top(sleeper))
    api.exec_resize(exec_id, height=10, width=20)  # no tty: accepted, nothing to size
    deadline = time.monotonic() + 10
    while api.exec_inspect(exec_id)["Running"]:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert api.exec_inspect(exec_id)["ExitCode"] == 0


def test_docker_py_exec_with_a_tty_and_resize(
    engine: RunningDaemon, sleeper: str, client: docker.DockerClient
) -> None:
    api = client.api
    exec_id = api.exec_create(sleeper, ["sh", "-c", "sleep 0.5; stty size"], tty=True)["Id"]
    sock = api.exec_start(exec_id, tty=True, socket=True)
    try:
        api.exec_resize(exec_id, height=12, width=34)
        raw = sock._sock if hasattr(sock, "_sock") else sock
        out = b""
        raw.settimeout(15)
        while chunk := raw.recv(4096):
            out += chunk
    finally:
        sock.close()
    assert b"12 34" in out
    assert api.exec_inspect(exec_id)["ExitCode"] == 0
