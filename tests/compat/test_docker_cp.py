"""Files in and out of containers on skiffd: ``docker cp`` both ways (files,
directories, tar on stdin and stdout, running and stopped containers), ``docker diff``,
``docker export``, and docker-py's ``get_archive`` / ``put_archive`` with dockerd's
``X-Docker-Container-Path-Stat`` header — and the hostile cases: tars that climb out
of their directory, symlinks in the container that lead out of its root."""

from __future__ import annotations

import base64
import io
import json
import os
import secrets
import shutil
import socket
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest
from docker.errors import APIError, NotFound

from tests.support.daemon import RunningDaemon
from tests.support.engine import DOCKER, docker_ok, dockerpy_client, removed_after, uname
from tests.support.engine import docker as docker_cli

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(DOCKER is None, reason="the docker CLI is not installed"),
]

GO_DIR = 1 << 31
GO_SYMLINK = 1 << 27


@pytest.fixture
def client(engine: RunningDaemon) -> Iterator[docker.DockerClient]:
    with dockerpy_client(engine, timeout=60) as c:
        yield c


@pytest.fixture
def tmp(tmp_path: Path) -> Path:
    return tmp_path


@pytest.fixture
def cleanup(engine: RunningDaemon) -> Iterator[list[str]]:
    """Names of containers to remove (``docker rm -f``) after the test."""
    with removed_after(engine) as names:
        yield names


def run_bytes(
    engine: RunningDaemon, *args: str, input: bytes | None = None
) -> subprocess.CompletedProcess[bytes]:
    assert DOCKER is not None
    return subprocess.run(
        [DOCKER, *args], input=input, capture_output=True, env=engine.env(), timeout=60
    )


def head(client: docker.DockerClient, ref: str, path: str) -> tuple[int, dict[str, object] | None]:
    """``HEAD /containers/{ref}/archive?path=``: the status and the decoded stat header."""
    api = client.api
    r = api.head(api._url("/containers/{0}/archive", ref), params={"path": path})
    raw = r.headers.get("X-Docker-Container-Path-Stat")
    return r.status_code, json.loads(base64.b64decode(raw)) if raw else None


def wait_for(client: docker.DockerClient, ref: str, path: str, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if head(client, ref, path)[0] == 200:
            return
        time.sleep(0.05)
    raise AssertionError(f"{path} did not appear in {ref}")


def sleeper(engine: RunningDaemon, cleanup: list[str], script: str = "", *args: str) -> str:
    """A running busybox that ran ``script`` and then touched /tmp/ready."""
    name = uname("cp")
    cleanup.append(name)
    docker_ok(
        engine,
        "run",
        "-d",
        "--name",
        name,
        *args,
        "busybox",
        "sh",
        "-c",
        f"{script}\ntouch /tmp/ready; exec sleep 1000",
    )
    return name


def ready(client: docker.DockerClient, name: str) -> str:
    wait_for(client, name, "/tmp/ready")
    return name


def tar_bytes(entries: list[tuple[str, str, bytes | str]], mode: str = "w") -> bytes:
    """A tar of (name, kind, data) with kind f(ile), d(ir), l (symlink), h(ard link)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as t:  # type: ignore[call-overload]
        for name, kind, data in entries:
            info = tarfile.TarInfo(name)
            info.mtime = 1_600_000_000
            if kind == "f":
                assert isinstance(data, bytes)
                info.size = len(data)
                info.mode = 0o640
                t.addfile(info, io.BytesIO(data))
            elif kind == "d":
                info.type = tarfile.DIRTYPE
                info.mode = 0o750
                t.addfile(info)
            else:
                info.type = tarfile.SYMTYPE if kind == "l" else tarfile.LNKTYPE
                assert isinstance(data, str)
                info.linkname = data
                t.addfile(info)
    return buf.getvalue()


def archive_members(client: docker.DockerClient, ref: str, path: str) -> dict[str, bytes | None]:
    """name -> content (None for non-files) of ``get_archive(path)``."""
    chunks, _ = client.containers.get(ref).get_archive(path)
    data = b"".join(chunks)
    out: dict[str, bytes | None] = {}
    with tarfile.open(fileobj=io.BytesIO(data)) as t:
        for m in t.getmembers():
            f = t.extractfile(m) if m.isreg() or m.islnk() else None
            out[m.name] = f.read() if f is not None else None
    return out


def read_file(client: docker.DockerClient, ref: str, path: str) -> bytes:
    members = archive_members(client, ref, path)
    (content,) = members.values()
    assert content is not None
    return content


# ----------------------------------------------------------------------- docker cp


def test_cp_file_and_directory_out_of_a_running_container(
    engine: RunningDaemon, client: docker.DockerClient, cleanup: list[str], tmp: Path
) -> None:
    name = ready(
        client,
        sleeper(
            engine,
            cleanup,
            "mkdir -p /srv/tree/sub && echo one > /srv/tree/a && echo two > /srv/tree/sub/b"
            " && ln -s a /srv/tree/link && chmod 751 /srv/tree/sub",
        ),
    )
    cid = docker_ok(engine, "inspect", "-f", "{{.Id}}", name).strip()
    # /etc/hostname is the container's own file, bind-mounted over the image's.
    docker_ok(engine, "cp", f"{name}:/etc/hostname", str(tmp / "x"))
    assert (tmp / "x").read_text() == cid[:12] + "\n"

    docker_ok(engine, "cp", f"{name}:/srv/tree", str(tmp / "d"))
    assert (tmp / "d" / "a").read_text() == "one\n"
    assert (tmp / "d" / "sub" / "b").read_text() == "two\n"
    assert os.readlink(tmp / "d" / "link") == "a"
    assert (tmp / "d" / "sub").stat().st_mode & 0o777 == 0o751

    # Into an existing directory: copied under its base name; "/." copies the contents.
    (tmp / "into").mkdir()
    docker_ok(engine, "cp", f"{name}:/srv/tree", str(tmp / "into"))
    assert (tmp / "into" / "tree" / "sub" / "b").read_text() == "two\n"
    (tmp / "contents").mkdir()
    docker_ok(engine, "cp", f"{name}:/srv/tree/.", str(tmp / "contents"))
    assert sorted(os.listdir(tmp / "contents")) == ["a", "link", "sub"]

    # A relative container path is taken from / (docker's documented behaviour).
    docker_ok(engine, "cp", f"{name}:srv/tree/a", str(tmp / "rel"))
    assert (tmp / "rel").read_text() == "one\n"


def test_cp_to_stdout_is_a_tar_named_by_base_name(
    engine: RunningDaemon, client: docker.DockerClient, cleanup: list[str]
) -> None:
    name = ready(client, sleeper(engine, cleanup, "mkdir -p /srv/d && echo hi > /srv/d/f"))
    out = run_bytes(engine, "cp", f"{name}:/srv/d", "-")
    assert out.returncode == 0, out.stderr
    with tarfile.open(fileobj=io.BytesIO(out.stdout)) as t:
        names = t.getnames()
        assert names == ["d", "d/f"]
        f = t.extractfile("d/f")
        assert f is not None and f.read() == b"hi\n"
    one = run_bytes(engine, "cp", f"{name}:/srv/d/f", "-")
    with tarfile.open(fileobj=io.BytesIO(one.stdout)) as t:
        assert t.getnames() == ["f"]


def test_cp_into_a_running_container_is_seen_by_it(
    engine: RunningDaemon, client: docker.DockerClient, cleanup: list[str], tmp: Path
) -> None:
    name = uname("cp")
    cleanup.append(name)
    docker_ok(
        engine,
        "run",
        "-d",
        "--name",
        name,
        "busybox",
        "sh",
        "-c",
        "mkdir /in; touch /tmp/ready; while [ ! -f /in/dir/deep/f ]; do sleep 0.05; done;"
        " cat /in/file /in/renamed /in/dir/deep/f; sleep 1000",
    )
    ready(client, name)
    (tmp / "file").write_text("file\n")
    (tmp / "dir" / "deep").mkdir(parents=True)
    (tmp / "dir" / "deep" / "f").write_text("deep\n")
    docker_ok(engine, "cp", str(tmp / "file"), f"{name}:/in/")
    docker_ok(engine, "cp", str(tmp / "file"), f"{name}:/in/renamed")
    docker_ok(engine, "cp", str(tmp / "dir"), f"{name}:/in/dir")
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        logs = docker_ok(engine, "logs", name)
        if "deep" in logs:
            break
        time.sleep(0.05)
    assert logs == "file\nfile\ndeep\n"


def test_cp_into_and_out_of_a_stopped_container(
    engine: RunningDaemon, client: docker.DockerClient, cleanup: list[str], tmp: Path
) -> None:
    name = uname("cp")
    cleanup.append(name)
    docker_ok(engine, "create", "--name", name, "busybox", "cat", "/tmp/note", "/root/stdin.txt")
    (tmp / "note").write_text("created, never started\n")
    docker_ok(engine, "cp", str(tmp / "note"), f"{name}:/tmp/")
    data = tar_bytes([("stdin.txt", "f", b"from a tar on stdin\n")])
    r = run_bytes(engine, "cp", "-", f"{name}:/root", input=data)
    assert r.returncode == 0, r.stderr
    # Out again while still stopped; then the container itself reads both.
    docker_ok(engine, "cp", f"{name}:/tmp/note", str(tmp / "back"))
    assert (tmp / "back").read_text() == "created, never started\n"
    out = docker_ok(engine, "start", "-a", name)
    assert out == "created, never started\nfrom a tar on stdin\n"
    docker_ok(engine, "cp", f"{name}:/root/stdin.txt", str(tmp / "after"))
    assert (tmp / "after").read_text() == "from a tar on stdin\n"
    # No view of the stopped container stays mounted.
    data_root = engine.root / "data"
    mounts = Path("/proc/self/mountinfo").read_text()
    assert str(engine.root / "exec" / "cpview") + "/" not in mounts
    cid = docker_ok(engine, "inspect", "-f", "{{.Id}}", name).strip()
    assert str(data_root / "containers" / cid / "rootfs") not in mounts


def _tar_until_whole(sock: socket.socket) -> bytes:
    """Reads a chunked archive answer only until its tar is whole (one small member
    and the zero blocks that end a tar), as the docker CLI stops reading."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        buf += sock.recv(65536)
    head, buf = buf.split(b"\r\n\r\n", 1)
    assert b" 200 " in head.split(b"\r\n")[0], head
    payload = b""
    while not (len(payload) >= 2048 and payload.endswith(b"\0" * 1024)):
        size_line, _, rest = buf.partition(b"\r\n")
        if not _ or len(rest) < int(size_line, 16) + 2:
            buf += sock.recv(65536)
            continue
        size = int(size_line, 16)
        assert size, f"the answer ended before its tar ({len(payload)} bytes)"
        payload += rest[:size]
        buf = rest[size + 2 :]
    return payload


def test_a_stopped_containers_view_is_gone_when_its_tar_is_whole(
    engine: RunningDaemon, cleanup: list[str]
) -> None:
    """The docker CLI returns once it has the whole tar, before the answer's last
    chunk: the read-only view of a stopped container is unmounted before the tar's
    last bytes go out."""
    name = uname("cpview")
    cleanup.append(name)
    docker_ok(engine, "run", "--name", name, "busybox", "sh", "-c", "echo kept > /tmp/note")
    views = str(engine.root / "exec" / "cpview") + "/"
    for _ in range(3):
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(30)
            s.connect(str(engine.socket))
            s.sendall(
                f"GET /v1.41/containers/{name}/archive?path=/tmp/note HTTP/1.1\r\n"
                "Host: docker\r\n\r\n".encode()
            )
            payload = _tar_until_whole(s)
            mounts = Path("/proc/self/mountinfo").read_text()
        with tarfile.open(fileobj=io.BytesIO(payload)) as tar:
            member = tar.extractfile("note")
            assert member is not None and member.read() == b"kept\n"
        assert views not in mounts


def test_a_user_is_looked_up_inside_the_container_not_through_a_symlink_out(
    engine: RunningDaemon, cleanup: list[str], tmp: Path
) -> None:
    """/etc/passwd made an absolute symlink to a host file: the user is looked up
    in the container (where that path leads nowhere), never in the host's file."""
    host_file = tmp / "passwd"
    host_file.write_text("root:x:0:0::/root:/bin/sh\nintruder:x:4242:4242::/evil:/bin/sh\n")
    name = uname("pwlink")
    cleanup.append(name)
    docker_ok(engine, "create", "--name", name, "--user", "intruder", "busybox", "id", "-u")
    r = run_bytes(
        engine, "cp", "-", f"{name}:/etc", input=tar_bytes([("passwd", "l", str(host_file))])
    )
    assert r.returncode == 0, r.stderr
    started = docker_cli(engine, "start", "-a", name)
    assert started.code != 0, started
    assert "unable to find user intruder" in started.err, started


def test_a_user_file_behind_a_symlink_is_read_again_for_each_container(
    engine: RunningDaemon, cleanup: list[str]
) -> None:
    """An image whose /etc/passwd is a symlink: a container that changes its target
    (in its own layer, with no /etc there) has its users looked up in its file, not
    in what an earlier container of the image read."""
    base, later = uname("pwbase"), uname("pwlater")
    cleanup += [base, later]
    docker_ok(engine, "create", "--name", base, "busybox", "true")
    passwd = "root:x:0:0::/root:/bin/sh\nalpha:x:1234:1234::/:/bin/sh\n"
    layer = tar_bytes(
        [
            ("usr/share", "d", b""),
            ("usr/share/passwd", "f", passwd.encode()),
            ("etc/passwd", "l", "/usr/share/passwd"),
        ]
    )
    assert run_bytes(engine, "cp", "-", f"{base}:/", input=layer).returncode == 0
    image = f"skiff-test-pwlink:{secrets.token_hex(3)}"
    docker_ok(engine, "commit", base, image)
    try:
        assert docker_ok(engine, "run", "--rm", "-u", "alpha", image, "id", "-u").strip() == "1234"
        docker_ok(engine, "create", "--name", later, "-u", "beta", image, "id", "-u")
        newer = passwd + "beta:x:5678:5678::/:/bin/sh\n"
        copied = run_bytes(
            engine,
            "cp",
            "-",
            f"{later}:/usr/share",
            input=tar_bytes([("passwd", "f", newer.encode())]),
        )
        assert copied.returncode == 0, copied.stderr
        assert docker_ok(engine, "start", "-a", later).strip() == "5678"
    finally:
        docker_cli(engine, "rm", "-f", base, later)
        docker_cli(engine, "rmi", image)


def test_cp_errors_like_dockerd(
    engine: RunningDaemon, client: docker.DockerClient, cleanup: list[str], tmp: Path
) -> None:
    name = ready(client, sleeper(engine, cleanup))
    r = docker_cli(engine, "cp", f"{name}:/no/such/file", str(tmp / "x"))
    assert r.code == 1
    assert f"Could not find the file /no/such/file in container {name}" in r.err
    (tmp / "f").write_text("x")
    r = docker_cli(engine, "cp", str(tmp / "f"), f"{name}:/no/such/dir/")
    assert r.code == 1
    missing = docker_cli(engine, "cp", f"no-such-{secrets.token_hex(3)}:/etc/passwd", str(tmp))
    assert missing.code == 1
    assert "No such container" in missing.err
    # The docker CLI refuses a tar on stdin for a destination that is not a directory.
    r = docker_cli(engine, "cp", "-", f"{name}:/etc/passwd", input="")
    assert r.code == 1


# ----------------------------------------------------------------------- diff, export


def test_diff_lists_changes_but_not_the_runtime_mount_points(
    engine: RunningDaemon, client: docker.DockerClient, cleanup: list[str]
) -> None:
    name = ready(
        client,
        sleeper(engine, cleanup, "echo x >> /etc/passwd; rm /bin/ls; mkdir -p /root/new/deeper"),
    )
    lines = docker_ok(engine, "diff", name).splitlines()
    for expected in (
        "C /bin",
        "D /bin/ls",
        "C /etc",
        "C /etc/passwd",
        "C /root",
        "A /root/new",
        "A /root/new/deeper",
        "C /tmp",
        "A /tmp/ready",
    ):
        assert expected in lines, lines
    assert not [line for line in lines if "hostname" in line or "resolv.conf" in line], lines
    # Stopped: the same list.
    docker_ok(engine, "stop", "-t", "0", name)
    assert docker_ok(engine, "diff", name).splitlines() == lines
    # docker-py's view of it.
    changes = client.containers.get(name).diff()
    assert {"Path": "/bin/ls", "Kind": 2} in changes
    assert {"Path": "/root/new", "Kind": 1} in changes


def test_diff_of_an_unchanged_container_is_empty(
    engine: RunningDaemon, client: docker.DockerClient, cleanup: list[str]
) -> None:
    name = uname("cp")
    cleanup.append(name)
    docker_ok(engine, "create", "--name", name, "busybox", "true")
    assert docker_ok(engine, "diff", name) == ""
    assert client.containers.get(name).diff() is None  # dockerd answers null


def test_export_streams_the_whole_filesystem(
    engine: RunningDaemon, client: docker.DockerClient, cleanup: list[str], tmp: Path
) -> None:
    vol = tmp / "vol"
    vol.mkdir()
    (vol / "in-volume").write_text("not exported")
    name = ready(
        client,
        sleeper(engine, cleanup, "echo exported > /root/mine", "-v", f"{vol}:/data"),
    )
    for state in ("running", "stopped"):
        r = run_bytes(engine, "export", name)
        assert r.returncode == 0, r.stderr
        listing = subprocess.run(
            ["tar", "t"], input=r.stdout, capture_output=True, check=True
        ).stdout.decode()
        names = listing.splitlines()
        assert "bin/busybox" in names
        assert "etc/passwd" in names
        assert "root/mine" in names, state
        assert not any(n.startswith("/") or n.startswith("./") for n in names)
        # Volumes and binds are not part of an export (as dockerd).
        assert "data/in-volume" not in names
        with tarfile.open(fileobj=io.BytesIO(r.stdout)) as t:
            f = t.extractfile("root/mine")
            assert f is not None and f.read() == b"exported\n"
        if state == "running":
            docker_ok(engine, "stop", "-t", "0", name)
    with pytest.raises(NotFound):
        b"".join(client.api.export(f"no-such-{secrets.token_hex(3)}"))


# ----------------------------------------------------------------------- docker-py


def test_get_archive_stat_like_dockerd(
    engine: RunningDaemon, client: docker.DockerClient, cleanup: list[str]
) -> None:
    name = ready(
        client,
        sleeper(
            engine,
            cleanup,
            "printf 12345 > /root/five && chmod 4751 /root/five && ln -s /etc /root/etc-link"
            " && mkdir /root/dir",
        ),
    )
    c = client.containers.get(name)
    chunks, st = c.get_archive("/root/five")
    assert st["name"] == "five"
    assert st["size"] == 5
    assert st["mode"] == 0o751 | 1 << 23  # setuid as Go's os.ModeSetuid
    assert st["linkTarget"] == ""
    assert st["mtime"].endswith("Z") and st["mtime"].startswith("20")
    with tarfile.open(fileobj=io.BytesIO(b"".join(chunks))) as t:
        (m,) = t.getmembers()
        assert (m.name, m.size, m.mode) == ("five", 5, 0o4751)

    _, st = c.get_archive("/root/dir/")
    assert st["name"] == "dir" and st["mode"] == GO_DIR | 0o755
    _, st = c.get_archive("/")
    assert st["name"] == "/" and st["mode"] & GO_DIR

    # A symlink is reported (and archived) as itself, its target resolved in the root.
    chunks, st = c.get_archive("/root/etc-link")
    assert st["mode"] == GO_SYMLINK | 0o777
    assert st["linkTarget"] == "/etc"
    with tarfile.open(fileobj=io.BytesIO(b"".join(chunks))) as t:
        (m,) = t.getmembers()
        assert m.issym() and m.linkname == "/etc"

    # HEAD answers the same header and no body; gzip when asked.
    status, hst = head(client, name, "/root/five")
    assert status == 200 and hst == {**hst, "name": "five", "size": 5}
    assert head(client, name, "/root/missing")[0] == 404
    chunks, _ = c.get_archive("/root/five", encode_stream=True)
    with tarfile.open(fileobj=io.BytesIO(b"".join(chunks))) as t:
        f = t.extractfile("five")
        assert f is not None and f.read() == b"12345"

    with pytest.raises(NotFound) as missing:
        c.get_archive("/root/missing")
    assert "Could not find the file /root/missing in container" in str(missing.value)
    with pytest.raises(APIError) as empty:
        c.get_archive("")
    assert empty.value.status_code == 400
    assert "bad parameter: path cannot be empty" in str(empty.value)


def test_put_archive_plain_and_compressed(
    engine: RunningDaemon, client: docker.DockerClient, cleanup: list[str]
) -> None:
    name = ready(client, sleeper(engine, cleanup, "mkdir /dest"))
    c = client.containers.get(name)
    for i, mode in enumerate(("w", "w:gz", "w:bz2", "w:xz")):
        data = tar_bytes(
            [
                (f"t{i}", "d", b""),
                (f"t{i}/sub/file", "f", f"content {mode}".encode()),
                (f"t{i}/link", "l", "sub/file"),
                (f"t{i}/hard", "h", f"t{i}/sub/file"),
            ],
            mode,
        )
        assert c.put_archive("/dest", data) is True
        members = archive_members(client, name, f"/dest/t{i}")
        assert members[f"t{i}/sub/file"] == f"content {mode}".encode()
        assert f"t{i}/link" in members
    _, st = c.get_archive("/dest/t0/sub/file")
    assert st["mode"] == 0o640
    assert st["mtime"] == "2020-09-13T12:26:40Z"
    # An existing file is replaced; into a path that is a file: dockerd's 400.
    c.put_archive("/dest", tar_bytes([("t0/sub/file", "f", b"new")]))
    assert read_file(client, name, "/dest/t0/sub/file") == b"new"
    with pytest.raises(APIError) as not_dir:
        c.put_archive("/dest/t0/sub/file", tar_bytes([("x", "f", b"x")]))
    assert not_dir.value.status_code == 400
    assert "extraction point is not a directory" in str(not_dir.value)
    with pytest.raises(NotFound):
        c.put_archive("/no/such/dir", tar_bytes([("x", "f", b"x")]))
    # noOverwriteDirNonDir (what the docker CLI sends): a directory is not replaced.
    api = client.api
    r = api.put(
        api._url("/containers/{0}/archive", name),
        params={"path": "/dest", "noOverwriteDirNonDir": "true"},
        data=tar_bytes([("t0", "f", b"not a dir")]),
    )
    assert r.status_code == 400
    assert "cannot overwrite directory" in r.json()["message"]
    # Without it (docker-py's default) it is, as dockerd does.
    c.put_archive("/dest", tar_bytes([("t3", "f", b"now a file")]))
    assert read_file(client, name, "/dest/t3") == b"now a file"


def test_put_archive_refuses_hostile_tars(
    engine: RunningDaemon, client: docker.DockerClient, cleanup: list[str]
) -> None:
    marker = f"skiff-cp-{secrets.token_hex(4)}"
    host_tmp = Path(tempfile.gettempdir())
    name = ready(client, sleeper(engine, cleanup, "mkdir -p /dest/inner"))
    c = client.containers.get(name)
    hostile = {
        "dotdot": [(f"../../../../../../../../tmp/{marker}", "f", b"x")],
        "dotdot-in-middle": [(f"inner/../../{marker}", "f", b"x")],
        "absolute-symlink": [("evil", "l", "/etc"), (f"evil/{marker}", "f", b"x")],
        "relative-symlink": [
            ("up", "l", "../../../../../../../../tmp"),
            (f"up/{marker}", "f", b"x"),
        ],
        "symlink-in-dir": [("inner/jump", "l", "/"), (f"inner/jump/{marker}", "f", b"x")],
        "hardlink-out": [(marker, "h", "../etc/passwd")],
        "hardlink-through-symlink": [("etcl", "l", "/etc"), (marker, "h", "etcl/passwd")],
    }
    for label, entries in hostile.items():
        with pytest.raises(APIError) as refused:
            c.put_archive("/dest", tar_bytes(entries))
        assert refused.value.status_code == 400, label
    # Nothing was written outside /dest, in the container or on the host.
    for where in ("/", "/etc", "/tmp", "/dest/..", "/dest/inner/.."):
        assert head(client, name, f"{where}/{marker}")[0] == 404, where
    assert not (host_tmp / marker).exists()
    assert not (Path("/etc") / marker).exists()
    # The container's own passwd is intact and no link to it appeared.
    assert b"root:x:0:0" in read_file(client, name, "/etc/passwd")
    assert head(client, name, f"/dest/{marker}")[0] == 404
    # Garbage is refused with a clear error.
    with pytest.raises(APIError) as garbage:
        c.put_archive("/dest", b"\x1f\x8b\x08 this is not gzip " * 40)
    assert garbage.value.status_code == 400


def test_symlinks_leading_out_of_the_root_resolve_inside_it(
    engine: RunningDaemon, client: docker.DockerClient, cleanup: list[str], tmp: Path
) -> None:
    # The same path on the host and in the container: the host's must never be used.
    host_dir = Path(tempfile.mkdtemp(prefix="skiff-cp-host-", dir="/tmp"))
    try:
        (host_dir / "secret").write_text("host\n")
        name = ready(
            client,
            sleeper(
                engine,
                cleanup,
                f"mkdir -p {host_dir} && echo container > {host_dir}/secret"
                f" && ln -s ../../../../../../../..{host_dir} /root/rel"
                f" && ln -s {host_dir} /root/abs"
                " && ln -s /../../../etc /root/etc"
                " && ln -s /root/loop /root/loop",
            ),
        )
        c = client.containers.get(name)
        for link in ("/root/rel", "/root/abs"):
            assert read_file(client, name, f"{link}/secret") == b"container\n"
            _, st = c.get_archive(link)
            assert st["linkTarget"] == str(host_dir)
            # A trailing slash follows the link: its directory, named by the link.
            members = archive_members(client, name, f"{link}/")
            assert members[f"{Path(link).name}/secret"] == b"container\n"
        assert b"root:x:0:0:root:/root:/bin/sh" in read_file(client, name, "/root/etc/passwd")
        _, st = c.get_archive("/root/etc")
        assert st["linkTarget"] == "/etc"

        # PUT through the links writes into the container's directory.
        for link in ("/root/rel", "/root/abs", "/root/rel/"):
            c.put_archive(link, tar_bytes([("put", "f", link.encode())]))
            assert read_file(client, name, f"{host_dir}/put") == link.encode()
        docker_ok(engine, "cp", f"{name}:/root/rel/secret", str(tmp / "s"))
        assert (tmp / "s").read_text() == "container\n"
        (tmp / "up").write_text("up\n")
        docker_ok(engine, "cp", str(tmp / "up"), f"{name}:/root/abs/")
        assert read_file(client, name, f"{host_dir}/up") == b"up\n"
        assert sorted(os.listdir(host_dir)) == ["secret"]
        assert (host_dir / "secret").read_text() == "host\n"

        # A symlink loop is an error, not a hang.
        with pytest.raises(APIError):
            c.get_archive("/root/loop/x")

        # The same holds for a stopped container.
        docker_ok(engine, "stop", "-t", "0", name)
        assert read_file(client, name, "/root/rel/secret") == b"container\n"
        c.put_archive("/root/rel", tar_bytes([("stopped", "f", b"s")]))
        assert read_file(client, name, f"{host_dir}/stopped") == b"s"
        assert sorted(os.listdir(host_dir)) == ["secret"]
    finally:
        shutil.rmtree(host_dir, ignore_errors=True)


def test_volumes_and_binds_are_seen_running_and_stopped(
    engine: RunningDaemon, client: docker.DockerClient, cleanup: list[str], tmp: Path
) -> None:
    src = tmp / "bound"
    src.mkdir()
    (src / "from-host").write_text("host side\n")
    ro = tmp / "ro"
    ro.mkdir()
    name = ready(
        client,
        sleeper(
            engine,
            cleanup,
            "echo from-container > /data/made-inside",
            "-v",
            f"{src}:/data",
            "-v",
            f"{ro}:/ro:ro",
        ),
    )
    c = client.containers.get(name)
    for state in ("running", "stopped"):
        assert read_file(client, name, "/data/from-host") == b"host side\n"
        members = archive_members(client, name, "/data")
        assert members["data/made-inside"] == b"from-container\n"
        c.put_archive("/data", tar_bytes([(f"put-{state}", "f", state.encode())]))
        assert (src / f"put-{state}").read_text() == state
        with pytest.raises(APIError) as ro_err:
            c.put_archive("/ro", tar_bytes([("x", "f", b"x")]))
        assert ro_err.value.status_code == 400
        assert "mounted volume is marked read-only" in str(ro_err.value)
        assert os.listdir(ro) == []
        # A tar into / that reaches into the read-only bind is refused too.
        with pytest.raises(APIError):
            c.put_archive("/", tar_bytes([("ro/sneaky", "f", b"x")]))
        assert os.listdir(ro) == []
        if state == "running":
            docker_ok(engine, "stop", "-t", "0", name)


def test_read_only_rootfs_refuses_put(
    engine: RunningDaemon, client: docker.DockerClient, cleanup: list[str]
) -> None:
    name = uname("cp")
    cleanup.append(name)
    docker_ok(engine, "run", "-d", "--name", name, "--read-only", "busybox", "sleep", "1000")
    c = client.containers.get(name)
    assert c.status == "running"
    with pytest.raises(APIError) as err:
        c.put_archive("/root", tar_bytes([("x", "f", b"x")]))
    assert err.value.status_code == 400
    assert "container rootfs is marked read-only" in str(err.value)
    # Reading works as ever.
    assert b"root:x:0:0" in read_file(client, name, "/etc/passwd")


def test_running_container_whose_rootfs_is_not_mounted_for_the_daemon(
    engine: RunningDaemon, client: docker.DockerClient, cleanup: list[str], tmp: Path
) -> None:
    """A daemon in another mount namespace than the one it started a container in
    reads and writes through the container's own view (/proc/<pid>/root)."""
    (tmp / "from-host").write_text("host\n")
    name = ready(client, sleeper(engine, cleanup, "echo inside > /root/f", "-v", f"{tmp}:/data"))
    cid = docker_ok(engine, "inspect", "-f", "{{.Id}}", name).strip()
    rootfs = engine.root / "data" / "containers" / cid / "rootfs"
    subprocess.run(["umount", "-l", str(rootfs)], check=True)
    c = client.containers.get(name)
    assert read_file(client, name, "/root/f") == b"inside\n"
    assert read_file(client, name, "/data/from-host") == b"host\n"
    c.put_archive("/root", tar_bytes([("put", "f", b"put")]))
    assert read_file(client, name, "/root/put") == b"put"
    assert "/root/put" in [x["Path"] for x in c.diff()]
    names = list(archive_members(client, name, "/"))
    assert "/root/put" in names and "/data/from-host" in names
    assert not [n for n in names if n.startswith(("/proc/", "/sys/"))]
    exported = run_bytes(engine, "export", name)
    with tarfile.open(fileobj=io.BytesIO(exported.stdout)) as t:
        enames = t.getnames()
    assert "root/put" in enames
    assert not [n for n in enames if n.startswith(("proc/", "sys/", "data/"))]
    # Stopping still works, and the files stay.
    docker_ok(engine, "stop", "-t", "0", name)
    assert read_file(client, name, "/root/put") == b"put"


def test_cp_archive_mode_owns_files_by_the_container_user(
    engine: RunningDaemon, client: docker.DockerClient, cleanup: list[str], tmp: Path
) -> None:
    name = uname("cp")
    cleanup.append(name)
    docker_ok(engine, "create", "--name", name, "--user", "nobody", "busybox", "true")
    (tmp / "plain").write_text("p")
    os.chown(tmp / "plain", 1234, 4321)
    (tmp / "archived").write_text("a")
    docker_ok(engine, "cp", str(tmp / "plain"), f"{name}:/tmp/")
    docker_ok(engine, "cp", "-a", str(tmp / "archived"), f"{name}:/tmp/")
    owners = {}
    for fname in ("plain", "archived"):
        chunks, _ = client.containers.get(name).get_archive(f"/tmp/{fname}")
        with tarfile.open(fileobj=io.BytesIO(b"".join(chunks))) as t:
            (m,) = t.getmembers()
            owners[fname] = (m.uid, m.gid)
    assert owners["archived"] == (65534, 65534)  # busybox's nobody:nogroup
    assert owners["plain"] == (1234, 4321)  # the tar's, as dockerd keeps them


def test_a_client_leaving_mid_stream_releases_the_stopped_container(
    engine: RunningDaemon, client: docker.DockerClient, cleanup: list[str]
) -> None:
    name = uname("cp")
    cleanup.append(name)
    docker_ok(
        engine,
        "run",
        "--name",
        name,
        "busybox",
        "sh",
        "-c",
        "dd if=/dev/zero of=/big bs=1M count=64 2>/dev/null; echo done",
    )
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(str(engine.socket))
        s.sendall(f"GET /containers/{name}/archive?path=/big HTTP/1.1\r\nHost: d\r\n\r\n".encode())
        got = s.recv(65536)
        assert got.startswith(b"HTTP/1.1 200")
    views = engine.root / "exec" / "cpview"
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if str(views) + "/" not in Path("/proc/self/mountinfo").read_text():
            break
        time.sleep(0.05)
    else:
        raise AssertionError("the view of the stopped container stayed mounted")
    # Its lock was released: it starts, and a file bind-mounted in it is written in place.
    docker_ok(engine, "start", name)
    c = client.containers.get(name)
    c.put_archive("/etc", tar_bytes([("hostname", "f", b"renamed\n")]))
    assert read_file(client, name, "/etc/hostname") == b"renamed\n"
