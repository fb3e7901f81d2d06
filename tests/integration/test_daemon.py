"""skiffd as a real process on a unix socket."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import stat
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from skiff.version import API_VERSION, MIN_API_VERSION, __version__
from tests.conftest import short_tmpdir
from tests.support.daemon import RunningDaemon, skiffd_command, start_daemon


def _raw(sock_path: Path, request: bytes) -> bytes:
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(10)
        s.connect(str(sock_path))
        s.sendall(request)
        s.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_ping_head_and_get(skiffd: RunningDaemon) -> None:
    with skiffd.client() as client:
        head = client.raw_request("HEAD", "/_ping")
        get = client.raw_request("GET", "/_ping")
    for resp in (head, get):
        assert resp.status == 200
        assert resp.headers["api-version"] == API_VERSION
        assert resp.headers["ostype"] == "linux"
    assert head.body == b""
    assert get.body == b"OK"


def test_version_shape_and_prefixes(skiffd: RunningDaemon) -> None:
    with skiffd.client() as client:
        bare = client.raw_request("GET", "/version").json()
        for v in (MIN_API_VERSION, "1.45", API_VERSION):
            assert client.raw_request("GET", f"/v{v}/version").json()["Version"] == __version__
        old = client.raw_request("GET", "/v1.24/version")
        new = client.raw_request("GET", "/v9.99/version")
    assert bare["ApiVersion"] == API_VERSION and bare["MinAPIVersion"] == MIN_API_VERSION
    assert bare["Os"] == "linux" and bare["Version"] == __version__
    engine = bare["Components"][0]
    assert engine["Name"] == "Engine" and engine["Details"]["ApiVersion"] == API_VERSION
    assert old.status == 400 and "too old" in old.json()["message"]
    assert new.status == 400 and "too new" in new.json()["message"]


def test_unknown_path_and_malformed_requests_leave_the_daemon_up(skiffd: RunningDaemon) -> None:
    out = _raw(skiffd.socket, b"GET /v1.51/no/such/thing HTTP/1.1\r\nHost: x\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 404 ") and b'"page not found"' in out
    assert _raw(skiffd.socket, b"\x00\x01garbage\r\n\r\n").startswith(b"HTTP/1.1 400 ")
    assert _raw(skiffd.socket, b"GET / HTTP/1.1\r\n" + b"X: y\r\n" * 20000).startswith(
        b"HTTP/1.1 431 "
    )
    # a body announced and cut short, then the connection closed
    _raw(skiffd.socket, b"POST /version HTTP/1.1\r\nContent-Length: 100\r\n\r\nabc")
    with skiffd.client() as client:
        assert client.ping().status == 200


def test_keep_alive_serves_many_requests_on_one_connection(skiffd: RunningDaemon) -> None:
    request = b"GET /_ping HTTP/1.1\r\nHost: x\r\n\r\n"
    out = _raw(skiffd.socket, request * 20)
    assert out.count(b"HTTP/1.1 200 OK") == 20


def test_the_daemon_runs_on_uvloop(skiffd: RunningDaemon) -> None:
    # A dependency (pyproject): asyncio's own loop is only a fallback, with a warning.
    maps = Path(f"/proc/{skiffd.proc.pid}/maps").read_text()
    assert "/uvloop/loop." in maps
    assert "uvloop is not installed" not in skiffd.log()


def test_socket_mode_and_pidfile(daemon_factory: Callable[..., RunningDaemon]) -> None:
    daemon = daemon_factory()
    mode = stat.S_IMODE(daemon.socket.stat().st_mode)
    assert mode == 0o660
    assert int(daemon.pidfile.read_text()) == daemon.proc.pid
    assert (daemon.root / "data").is_dir() and (daemon.root / "exec").is_dir()


def test_sigterm_stops_cleanly(daemon_factory: Callable[..., RunningDaemon]) -> None:
    daemon = daemon_factory()
    daemon.proc.send_signal(signal.SIGTERM)
    assert daemon.proc.wait(15) == 0
    assert not daemon.socket.exists()
    assert not daemon.pidfile.exists()
    assert "daemon shut down" in daemon.log()


def test_second_daemon_on_a_live_socket_is_refused(
    daemon_factory: Callable[..., RunningDaemon],
) -> None:
    first = daemon_factory()
    other = short_tmpdir("skiffd-")
    try:
        cmd = skiffd_command(other)
        cmd[cmd.index("-H") + 1] = first.host
        (other / "daemon.json").write_text("{}")
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
        assert proc.returncode == 1
        assert "already listening" in proc.stderr
        with first.client() as client:
            assert client.ping().status == 200
    finally:
        subprocess.run(["rm", "-rf", str(other)], check=True)


def test_live_pidfile_is_refused_and_stale_socket_replaced(
    daemon_factory: Callable[..., RunningDaemon],
) -> None:
    first = daemon_factory()
    root = short_tmpdir("skiffd-")
    try:
        cmd = skiffd_command(root)
        cmd[cmd.index("--pidfile") + 1] = str(first.pidfile)
        (root / "daemon.json").write_text("{}")
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
        assert proc.returncode == 1 and "pid file found" in proc.stderr

        # A stale socket file (nobody listening) does not stop a new daemon.
        stale = socket.socket(socket.AF_UNIX)
        stale.bind(str(root / "skiff.sock"))
        stale.close()
        daemon = start_daemon(root)
        try:
            with daemon.client() as client:
                assert client.ping().status == 200
        finally:
            assert daemon.stop() == 0
    finally:
        subprocess.run(["rm", "-rf", str(root)], check=True)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ('{"data-root": "/elsewhere"}', "both as a flag and in the configuration file"),
        ('{"bogus": true}', "don't match any configuration option"),
        ("{oops", "unable to configure"),
    ],
)
def test_bad_configuration_is_refused(config: str, message: str) -> None:
    root = short_tmpdir("skiffd-")
    try:
        (root / "daemon.json").write_text(config)
        proc = subprocess.run(skiffd_command(root), capture_output=True, text=True, timeout=30)
        assert proc.returncode == 1
        assert message in proc.stderr
        assert not (root / "skiff.sock").exists()
    finally:
        subprocess.run(["rm", "-rf", str(root)], check=True)


def test_config_file_settings_apply(daemon_factory: Callable[..., RunningDaemon]) -> None:
    quiet = daemon_factory()
    debug = daemon_factory(config=json.dumps({"debug": True}))
    for daemon in (quiet, debug):
        with daemon.client() as client:
            client.version()
    assert f'msg="Calling GET /v{API_VERSION}/version"' in debug.log()
    assert "Calling GET" not in quiet.log()


def test_skiffd_version_flag() -> None:
    cmd = skiffd_command(Path("/nonexistent"))[:3]
    out = subprocess.run([*cmd, "--version"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0
    assert out.stdout.strip() == f"Skiff version {__version__}"


def test_per_container_directories_are_spread_over_the_disk(engine: RunningDaemon) -> None:
    """The parents of what is made per container carry ext4's top-directory flag
    (dirspread): its children land in block groups of their own choosing."""
    data = engine.root / "data" / "containers"
    if subprocess.run(
        ["stat", "-f", "-c", "%T", str(data)], capture_output=True, text=True, check=True
    ).stdout.strip() not in ("ext2/ext3", "ext4"):
        pytest.skip("the test daemon's root is not on ext4")
    for d in (data, engine.root / "exec" / "m", engine.root / "exec" / "runtime"):
        out = subprocess.run(["lsattr", "-d", str(d)], capture_output=True, text=True, check=True)
        assert "T" in out.stdout.split()[0], (d, out.stdout)


def test_descriptors_the_daemon_inherits_do_not_reach_what_it_starts(
    engine_factory: Callable[..., RunningDaemon],
) -> None:
    """A pipe's write end left open to skiffd by whoever started it: an exec's
    runtime, which the event loop starts and which lives as long as the exec runs,
    does not keep it (the pipe's reader would wait on its end as long)."""
    from tests.support.engine import DOCKER, docker_ok

    if DOCKER is None:
        pytest.skip("the docker CLI is not installed")
    r, w = os.pipe()
    try:
        d = engine_factory(pass_fds=(w,))
    finally:
        os.close(w)
    pipe = f"pipe:[{os.fstat(r).st_ino}]"
    execing = None
    try:
        assert pipe in _links(d.proc.pid)  # inherited, as given
        docker_ok(d, "run", "-d", "--name", "fds", "--network", "none", "busybox", "sleep", "60")
        execing = subprocess.Popen([DOCKER, "exec", "fds", "sleep", "5"], env=d.env())
        runtimes: list[int] = []
        deadline = time.monotonic() + 5
        while not runtimes and time.monotonic() < deadline:
            runtimes = [pid for pid in _children(d.proc.pid) if _comm(pid) == "skiff-runtime"]
            time.sleep(0.02)
        assert runtimes, "no exec runtime seen"
        for pid in runtimes:
            assert pipe not in _links(pid), f"the exec's runtime {pid} holds {pipe}"
    finally:
        if execing is not None:
            execing.kill()
            execing.wait()
        docker_ok(d, "rm", "-f", "fds")
        os.close(r)


def _links(pid: int) -> list[str]:
    """What the open descriptors of process ``pid`` are (``pipe:[inode]``...)."""
    links = []
    with contextlib.suppress(OSError):
        for name in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):  # closed meanwhile
                links.append(os.readlink(f"/proc/{pid}/fd/{name}"))
    return links


def _children(pid: int) -> list[int]:
    from skiff.engine.monitor import parent_of

    return [int(n) for n in os.listdir("/proc") if n.isdigit() and parent_of(int(n)) == pid]


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""
