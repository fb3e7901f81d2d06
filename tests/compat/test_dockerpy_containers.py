"""docker-py (from PyPI, unchanged) running containers on skiffd, and the answers
dockerd gives to bad requests: malformed bodies, unknown IDs, names in use, versions."""

from __future__ import annotations

import http.client
import json
import os
import secrets
import signal
import socket
import time
from pathlib import Path

import docker
import pytest
from docker.errors import APIError, ContainerError, ImageNotFound, NotFound

from tests.support.daemon import RunningDaemon
from tests.support.engine import dockerpy_client, uname

pytestmark = pytest.mark.root


@pytest.fixture
def client(engine: RunningDaemon) -> docker.DockerClient:
    with dockerpy_client(engine, timeout=60) as c:
        yield c


def test_containers_run_attached_returns_output(client: docker.DockerClient) -> None:
    out = client.containers.run("busybox", ["sh", "-c", "echo hello; echo err >&2"], remove=True)
    assert out == b"hello\n"
    with pytest.raises(ContainerError) as info:
        client.containers.run("busybox", ["sh", "-c", "exit 4"], remove=True)
    assert info.value.exit_status == 4


def test_containers_run_detached_logs_stream_wait_remove(client: docker.DockerClient) -> None:
    name = uname("py")
    c = client.containers.run(
        "busybox",
        ["sh", "-c", "for i in 1 2 3; do echo n$i; sleep 0.1; done"],
        detach=True,
        name=name,
        labels={"suite": name},
        environment={"K": "V"},
    )
    try:
        lines = b"".join(c.logs(stream=True, follow=True)).split()
        assert lines == [b"n1", b"n2", b"n3"]
        assert c.wait(timeout=10)["StatusCode"] == 0
        c.reload()
        assert c.status == "exited"
        assert "K=V" in c.attrs["Config"]["Env"]
        found = client.containers.list(all=True, filters={"label": f"suite={name}"})
        assert [x.id for x in found] == [c.id]
        assert client.containers.list(filters={"label": f"suite={name}"}) == []
    finally:
        c.remove(force=True)
    with pytest.raises(NotFound):
        client.containers.get(name)


def test_stop_kill_restart_through_docker_py(client: docker.DockerClient) -> None:
    c = client.containers.run("busybox", ["sleep", "60"], detach=True, name=uname("skr"))
    try:
        c.kill(signal="SIGKILL")
        assert c.wait(timeout=10)["StatusCode"] == 137
        c.restart(timeout=1)
        c.reload()
        assert c.status == "running"
        c.stop(timeout=1)
        c.reload()
        assert c.status == "exited"
    finally:
        c.remove(force=True)


def test_a_signal_the_kernel_has_not_is_a_bad_request(client: docker.DockerClient) -> None:
    c = client.containers.run("busybox", ["sleep", "60"], detach=True, name=uname("sig"))
    try:
        with pytest.raises(APIError) as err:
            c.kill(signal="SIGRTMAX+1")  # 65: parsed, but no such signal
        assert err.value.status_code == 400, err.value
        c.reload()
        assert c.status == "running"
    finally:
        c.remove(force=True)


def test_a_mount_on_the_container_root_is_refused_like_dockerd(
    client: docker.DockerClient, tmp_path: Path
) -> None:
    """dockerd refuses a bind, mount or tmpfs whose destination is the root (the
    runtime would mount over the root it is preparing)."""
    api = client.api
    for host_config in (
        api.create_host_config(binds=[f"{tmp_path}:/"]),
        api.create_host_config(binds=[f"{tmp_path}:/..:ro"]),
        api.create_host_config(tmpfs={"//": ""}),
        api.create_host_config(
            mounts=[docker.types.Mount(target="/", source=str(tmp_path), type="bind")]
        ),
    ):
        before = len(api.containers(all=True))
        with pytest.raises(APIError) as err:
            api.create_container("busybox", ["true"], host_config=host_config)
        assert err.value.status_code == 400, err.value
        assert "destination can't be '/'" in str(err.value.explanation)
        assert len(api.containers(all=True)) == before


def test_missing_image_is_image_not_found(client: docker.DockerClient) -> None:
    with pytest.raises(ImageNotFound):
        client.containers.create("no-such-image-" + secrets.token_hex(3))


def _connection(engine: RunningDaemon) -> http.client.HTTPConnection:
    """An HTTP connection to the daemon's socket, connected."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(str(engine.socket))
    conn = http.client.HTTPConnection("localhost")
    conn.sock = sock
    return conn


def _raw(
    engine: RunningDaemon, method: str, path: str, body: bytes | None = None
) -> tuple[int, dict]:
    conn = _connection(engine)
    headers = {"Content-Type": "application/json"} if body is not None else {}
    conn.request(method, path, body=body, headers=headers)
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    return resp.status, json.loads(data) if data.strip() else {}


def test_bad_requests_answered_like_dockerd(engine: RunningDaemon) -> None:
    status, body = _raw(engine, "POST", "/v1.45/containers/create", b"{not json")
    assert status == 400 and "invalid JSON" in body["message"]
    deep = b'{"Image":"busybox","Labels":' + b"[" * 5000 + b"]" * 5000 + b"}"
    status, body = _raw(engine, "POST", "/v1.45/containers/create", deep)
    assert status == 400 and "invalid JSON" in body["message"]
    status, body = _raw(engine, "POST", "/v1.45/containers/create", b"{}")
    assert status == 400
    status, body = _raw(engine, "GET", "/v1.45/containers/nope-" + secrets.token_hex(4) + "/json")
    assert status == 404 and body["message"].startswith("No such container: nope-")
    status, body = _raw(
        engine, "POST", "/v1.45/containers/create?name=bad%20name", b'{"Image":"busybox"}'
    )
    assert status == 400 and "Invalid container name" in body["message"]
    status, body = _raw(engine, "GET", "/v1.12/containers/json")
    assert status == 400 and "too old" in body["message"]
    status, body = _raw(engine, "GET", "/v9.99/containers/json")
    assert status == 400 and "too new" in body["message"]
    status, body = _raw(
        engine,
        "POST",
        "/v1.45/containers/create",
        b'{"Image":"busybox","HostConfig":{"RestartPolicy":{"Name":"sometimes"}}}',
    )
    assert status == 400 and "restart policy" in body["message"]
    status, body = _raw(engine, "POST", "/containers/json?all=1")
    assert status == 404  # wrong method: dockerd has no such route


def test_name_in_use_is_409(engine: RunningDaemon, client: docker.DockerClient) -> None:
    name = uname("dup")
    c = client.containers.create("busybox", ["true"], name=name)
    try:
        with pytest.raises(APIError) as info:
            client.containers.create("busybox", ["true"], name=name)
        assert info.value.status_code == 409
        assert "is already in use by container" in str(info.value)
    finally:
        c.remove(force=True)


def test_creates_that_come_together_with_one_name_make_one_container(
    engine: RunningDaemon, client: docker.DockerClient
) -> None:
    # Not made ahead of need (a tty): each create awaits its directory, made in
    # a thread, while the others are read.
    name = uname("together")
    body = json.dumps({"Image": "busybox", "Cmd": ["true"], "Tty": True}).encode()
    conns = [_connection(engine) for _ in range(4)]
    for conn in conns:
        conn.request(
            "POST",
            f"/v1.45/containers/create?name={name}",
            body=body,
            headers={"Content-Type": "application/json"},
        )
    answers = []
    for conn in conns:
        resp = conn.getresponse()
        answers.append((resp.status, json.loads(resp.read())))
        conn.close()
    try:
        assert sorted(status for status, _ in answers) == [201, 409, 409, 409], answers
        for status, answer in answers:
            if status == 409:
                assert (
                    f'The container name "/{name}" is already in use by container'
                    in (answer["message"])
                )
    finally:
        for status, answer in answers:
            if status == 201:
                client.api.remove_container(answer["Id"], force=True)


def test_a_wait_that_meets_a_removal_on_its_way_answers_the_exit(
    engine: RunningDaemon, client: docker.DockerClient
) -> None:
    """A wait looked up, then its container removed before the wait began (both
    requests read in one turn of the daemon's loop: it is stopped while they are
    sent): the removal meets its condition, as a removal during the wait does."""
    c = client.containers.run("busybox", ["sh", "-c", "exit 3"], detach=True)
    assert c.wait(timeout=10)["StatusCode"] == 3
    conns = [_connection(engine) for _ in range(2)]
    for conn in conns:
        conn.request("GET", "/_ping")  # accepted and read from: both wake the loop alike
        conn.getresponse().read()
    os.kill(engine.proc.pid, signal.SIGSTOP)
    try:
        conns[0].request("POST", f"/v1.45/containers/{c.id}/wait")
        conns[1].request("DELETE", f"/v1.45/containers/{c.id}?force=1")
    finally:
        os.kill(engine.proc.pid, signal.SIGCONT)
    waited, removed = (conn.getresponse() for conn in conns)
    assert removed.status == 204
    assert waited.status == 200, waited.read()
    assert json.loads(waited.read()) == {"StatusCode": 3, "Error": None}
    for conn in conns:
        conn.close()


def test_events_stream_reports_container_lifecycle(
    engine: RunningDaemon, client: docker.DockerClient
) -> None:
    name = uname("ev")
    since = time.time()
    c = client.containers.run("busybox", ["true"], detach=True, name=name)
    c.wait(timeout=10)
    c.remove()
    events = client.events(
        since=since, until=time.time() + 0.5, decode=True, filters={"container": name}
    )
    actions = [e["Action"] for e in events]
    assert actions[:1] == ["create"]
    assert "start" in actions and "die" in actions and actions[-1] == "destroy"


def _wait_answer(engine: RunningDaemon, cid: str, timeout: float) -> tuple[bytes, bytes]:
    """The head of a raw ``wait`` answer as soon as it comes, then the rest."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(str(engine.socket))
        s.sendall(f"POST /v1.45/containers/{cid}/wait HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        data = b""
        while b"\r\n\r\n" not in data:
            data += s.recv(4096)
        head, _, rest = data.partition(b"\r\n\r\n")
        return head, rest


def test_wait_streams_while_running_and_answers_at_once_after(
    client: docker.DockerClient, engine: RunningDaemon
) -> None:
    c = client.containers.run("busybox", ["sleep", "30"], detach=True)
    try:
        # Running: the head comes at once (the docker CLI waits for it before it
        # starts a container), the body at the exit.
        head, _ = _wait_answer(engine, c.id, timeout=5)
        assert head.startswith(b"HTTP/1.1 200") and b"Transfer-Encoding: chunked" in head
        c.kill()
        assert c.wait(timeout=10)["StatusCode"] == 137
        # Exited: the whole answer at once, with its length.
        head, body = _wait_answer(engine, c.id, timeout=5)
        assert head.startswith(b"HTTP/1.1 200") and b"Transfer-Encoding" not in head
        assert b"Content-Length: %d" % len(body) in head
        assert json.loads(body) == {"StatusCode": 137, "Error": None}
    finally:
        c.remove(force=True)
