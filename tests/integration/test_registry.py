"""The registry client against a real registry (Debian's docker-registry on
127.0.0.1): push and pull round trips, pulls by digest, basic auth with a docker
config.json, a corrupted blob, a dropped connection resumed with a Range request, and
skopeo on the same registry both ways."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import socket
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from skiff.errors import DigestMismatch, NotFound, Unauthorized
from skiff.image.archive import save_layout
from skiff.image.content import digest_bytes
from skiff.image.service import ImageService
from skiff.registry.auth import load_credentials, parse_challenges
from skiff.registry.pull import pull
from skiff.registry.push import push
from tests.conftest import short_tmpdir
from tests.support.registry import Registry
from tests.support.tls import make_ca, make_cert

pytestmark = pytest.mark.root

StoreFactory = Callable[[], ImageService]

#: A credential helper speaking docker-credential-helpers' protocol: `get` reads the
#: server on stdin and answers JSON, or "credentials not found" for unknown servers.
HELPER_SCRIPT = """#!/bin/sh
[ "$1" = get ] || exit 1
read server
if [ "$server" = "{server}" ]; then
  printf '{{"ServerURL":"%s","Username":"{user}","Secret":"{password}"}}' "$server"
else
  echo "credentials not found in native keychain"; exit 1
fi
"""


@pytest.fixture
def stores() -> Iterator[StoreFactory]:
    """Fresh image stores, each with its own data root; all removed afterwards."""
    made: list[tuple[ImageService, Path]] = []

    def factory() -> ImageService:
        root = short_tmpdir("skiff-rs-")
        svc = ImageService(root)
        made.append((svc, root))
        return svc

    yield factory
    for svc, root in made:
        svc.close()
        shutil.rmtree(root, ignore_errors=True)


class Log:
    """Collects progress messages."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []

    def __call__(self, message: dict[str, Any]) -> None:
        json.dumps(message)  # must be JSON
        self.messages.append(message)

    def statuses(self) -> list[str]:
        return [str(m.get("status", "")) for m in self.messages]


def _source(stores: StoreFactory, busybox_tar: Path, name: str) -> tuple[ImageService, str]:
    svc = stores()
    record = svc.import_tar(busybox_tar, tag=name)
    return svc, record.id


def _layers(svc: ImageService, image_id: str) -> list[str]:
    return [layer.digest for layer in svc.manifest_of(image_id).layers]


def test_push_then_pull_round_trip(
    registry: Registry, stores: StoreFactory, busybox_tar: Path
) -> None:
    name = f"{registry.host}/test/busybox:v1"
    src, image_id = _source(stores, busybox_tar, name)
    log = Log()
    digest = push(src, name, progress=log)
    assert digest.startswith("sha256:")
    assert log.messages[0] == {
        "status": f"The push refers to repository [{registry.host}/test/busybox]"
    }
    statuses = log.statuses()
    assert "Preparing" in statuses and "Pushed" in statuses
    assert any(
        m.get("status") == "Pushing" and m["progressDetail"].get("total") for m in log.messages
    )
    assert f"v1: digest: {digest} size:" in statuses[-2]
    assert log.messages[-1]["aux"]["Digest"] == digest
    assert f"{registry.host}/test/busybox@{digest}" in src.inspect(image_id)["RepoDigests"]

    dst = stores()
    log = Log()
    record = pull(dst, name, progress=log)
    assert record.id == image_id
    assert _layers(dst, record.id) == _layers(src, image_id)
    info = dst.inspect(name)
    assert info["Id"] == image_id
    assert info["RepoDigests"] == [f"{registry.host}/test/busybox@{digest}"]
    assert info["RepoTags"] == [name]
    statuses = log.statuses()
    assert statuses[0] == "Pulling from " + f"{registry.host}/test/busybox"
    for expected in ("Pulling fs layer", "Downloading", "Verifying Checksum", "Download complete"):
        assert expected in statuses
    assert "Extracting" in statuses and "Pull complete" in statuses
    assert statuses[-2] == f"Digest: {digest}"
    assert statuses[-1] == f"Status: Downloaded newer image for {name}"
    # The image runs from the snapshots: its files are there.
    lowers = dst.snapshots.lowers(record.chain)
    assert (lowers[-1] / "bin" / "busybox").exists()

    # Again: nothing to download.
    log = Log()
    assert pull(dst, name, progress=log).id == image_id
    statuses = log.statuses()
    assert "Downloading" not in statuses
    assert "Already exists" in statuses
    assert statuses[-1] == f"Status: Image is up to date for {name}"

    # Push again: every layer is there.
    log = Log()
    assert push(src, name, progress=log) == digest
    assert "Layer already exists" in log.statuses()
    assert "Pushed" not in log.statuses()


def test_pull_by_digest_and_missing_tag(
    registry: Registry, stores: StoreFactory, busybox_tar: Path
) -> None:
    name = f"{registry.host}/test/bydigest:v1"
    src, image_id = _source(stores, busybox_tar, name)
    digest = push(src, name)
    dst = stores()
    by_digest = f"{registry.host}/test/bydigest@{digest}"
    log = Log()
    record = pull(dst, by_digest, progress=log)
    assert record.id == image_id
    assert dst.meta.resolve(by_digest) == image_id
    assert dst.meta.tags_of(image_id) == []  # a pull by digest tags nothing
    assert log.statuses()[-1] == f"Status: Downloaded newer image for {by_digest}"
    with pytest.raises(NotFound):
        pull(dst, f"{registry.host}/test/bydigest:nope")
    with pytest.raises(NotFound):
        pull(dst, f"{registry.host}/test/nosuchrepo:v1")
    with pytest.raises(NotFound):
        pull(dst, f"{registry.host}/test/bydigest@sha256:{'0' * 64}")


def _write_config(directory: Path, host: str, user: str, password: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    auth = base64.b64encode(f"{user}:{password}".encode()).decode()
    path = directory / "config.json"
    path.write_text(json.dumps({"auths": {f"http://{host}": {"auth": auth}}}))
    return path


def test_basic_auth_with_docker_config(
    registry_auth: Registry,
    stores: StoreFactory,
    busybox_tar: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    reg = registry_auth
    name = f"{reg.host}/private/busybox:v1"
    src, image_id = _source(stores, busybox_tar, name)
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("DOCKER_CONFIG", str(empty))
    with pytest.raises(Unauthorized):
        push(src, name)
    wrong = _write_config(tmp_path / "wrong", reg.host, reg.user, "not-the-password")
    with pytest.raises(Unauthorized):
        push(src, name, config_path=wrong)

    good_dir = tmp_path / "good"
    _write_config(good_dir, reg.host, reg.user, reg.password)
    monkeypatch.setenv("DOCKER_CONFIG", str(good_dir))
    digest = push(src, name)

    dst = stores()
    monkeypatch.setenv("DOCKER_CONFIG", str(empty))
    with pytest.raises(Unauthorized):
        pull(dst, name)
    record = pull(dst, name, config_path=good_dir / "config.json")
    assert record.id == image_id
    assert dst.inspect(name)["RepoDigests"] == [f"{reg.host}/private/busybox@{digest}"]


def test_corrupted_blob_is_refused_and_leaves_nothing(
    registry: Registry, stores: StoreFactory, busybox_tar: Path
) -> None:
    name = f"{registry.host}/test/corrupt:v1"
    src, image_id = _source(stores, busybox_tar, name)
    push(src, name)
    (layer,) = _layers(src, image_id)
    data = registry.blob_data(layer)
    size = data.stat().st_size
    data.write_bytes(b"\x1f\x8b" + b"x" * (size - 2))  # same size, other bytes

    dst = stores()
    with pytest.raises(DigestMismatch):
        pull(dst, name)
    assert not dst.content.exists(layer)
    assert dst.content.ingest_refs() == []
    assert dst.meta.incomplete_layers() == []
    assert dst.meta.list_images() == []
    staging = dst.snapshots.staging
    assert not staging.exists() or list(staging.iterdir()) == []


class CuttingProxy:
    """A TCP proxy on 127.0.0.1 to the registry that cuts the first GET of blob
    ``digest`` after ``cut`` bytes of its answer, and records the requests it forwards."""

    def __init__(self, target: str, digest: str, cut: int) -> None:
        host, port = target.rsplit(":", 1)
        self.target = (host, int(port))
        self.cut = cut
        self.blob_path = f"/blobs/{digest}".encode()
        self.requests: list[bytes] = []
        self.cuts = 0
        self._lock = threading.Lock()
        self._server = socket.create_server(("127.0.0.1", 0))
        self.host = f"127.0.0.1:{self._server.getsockname()[1]}"
        self._threads: list[threading.Thread] = []
        self._socks: list[socket.socket] = []
        self._stop = False
        self._accept = threading.Thread(target=self._serve, daemon=True)
        self._accept.start()

    def _serve(self) -> None:
        while not self._stop:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            t = threading.Thread(target=self._handle, args=(client,), daemon=True)
            self._threads.append(t)
            t.start()

    def _handle(self, client: socket.socket) -> None:
        upstream = socket.create_connection(self.target)
        with self._lock:
            self._socks += [client, upstream]
        state = {"cut_this": False, "sent": 0}

        def up() -> None:
            try:
                while data := client.recv(65536):
                    with self._lock:
                        self.requests.append(data)
                        first_blob_get = (
                            data.startswith(b"GET ")
                            and self.blob_path in data.split(b"\r\n", 1)[0]
                            and self.cuts == 0
                        )
                        if first_blob_get:
                            self.cuts += 1
                            state["cut_this"] = True
                            state["sent"] = 0
                    upstream.sendall(data)
            except OSError:
                pass
            finally:
                with contextlib.suppress(OSError):
                    upstream.shutdown(socket.SHUT_WR)

        t = threading.Thread(target=up, daemon=True)
        t.start()
        try:
            while data := upstream.recv(65536):
                if state["cut_this"]:
                    room = self.cut - state["sent"]
                    if len(data) >= room:
                        client.sendall(data[:room])
                        break
                    state["sent"] += len(data)
                client.sendall(data)
        except OSError:
            pass
        finally:
            for s in (client, upstream):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()
            t.join(5)

    def close(self) -> None:
        self._stop = True
        with contextlib.suppress(OSError):
            self._server.shutdown(socket.SHUT_RDWR)  # wakes accept()
        self._server.close()
        with self._lock:
            socks = list(self._socks)
        for s in socks:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
        self._accept.join(5)
        for t in self._threads:
            t.join(5)


def test_dropped_connection_resumes_with_range(
    registry: Registry, stores: StoreFactory, busybox_tar: Path
) -> None:
    name = f"{registry.host}/test/resume:v1"
    src, image_id = _source(stores, busybox_tar, name)
    push(src, name)
    (layer,) = _layers(src, image_id)
    proxy = CuttingProxy(registry.host, layer, cut=200_000)
    try:
        dst = stores()
        record = pull(dst, f"{proxy.host}/test/resume:v1")
    finally:
        proxy.close()
    assert record.id == image_id
    assert dst.content.exists(layer)
    assert proxy.cuts == 1
    ranges = [r for r in proxy.requests if b"\r\nRange: bytes=" in r]
    assert ranges, "the resumed download sent no Range request"
    assert digest_bytes(dst.content.read(layer)) == layer


def _skopeo(*args: str) -> None:
    subprocess.run(["skopeo", *args], check=True, capture_output=True, timeout=120)


def test_skopeo_interop(
    registry: Registry, stores: StoreFactory, busybox_tar: Path, tmp_path: Path
) -> None:
    # skopeo pushes an OCI layout Skiff wrote; Skiff pulls it.
    src, image_id = _source(stores, busybox_tar, "local/busybox:v1")
    layout = tmp_path / "layout"
    save_layout(src, ["local/busybox:v1"], layout)
    _skopeo(
        "copy",
        "--dest-tls-verify=false",
        f"oci:{layout}:v1",
        f"docker://{registry.host}/bysko/busybox:v1",
    )
    dst = stores()
    record = pull(dst, f"{registry.host}/bysko/busybox:v1")
    assert record.id == image_id  # same config, so the same diff IDs
    raw = subprocess.run(
        [
            "skopeo",
            "inspect",
            "--raw",
            "--tls-verify=false",
            f"docker://{registry.host}/bysko/busybox:v1",
        ],
        check=True,
        capture_output=True,
        timeout=60,
    ).stdout
    # skopeo compresses the plain tar layer on the way: the pulled blobs are its blobs.
    pushed = [x["digest"] for x in json.loads(raw)["layers"]]
    assert _layers(dst, record.id) == pushed
    assert (
        f"{registry.host}/bysko/busybox@{digest_bytes(raw)}"
        in dst.inspect(record.id)["RepoDigests"]
    )

    # Skiff pushes; skopeo copies it to an OCI layout with the same digests.
    name = f"{registry.host}/byskiff/busybox:v2"
    src.tag(image_id, name)
    digest = push(src, name)
    out = tmp_path / "out"
    _skopeo(
        "copy",
        "--src-tls-verify=false",
        "--preserve-digests",
        "--dest-oci-accept-uncompressed-layers",
        f"docker://{name}",
        f"oci:{out}:v2",
    )
    index = json.loads((out / "index.json").read_text())
    (entry,) = index["manifests"]
    assert entry["digest"] == digest
    manifest = json.loads((out / "blobs/sha256" / digest.split(":")[1]).read_bytes())
    assert manifest["config"]["digest"] == image_id
    assert [x["digest"] for x in manifest["layers"]] == _layers(src, image_id)


def test_challenge_parsing_and_config_lookup(tmp_path: Path) -> None:
    (ch,) = parse_challenges(
        'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
        'scope="repository:library/busybox:pull"'
    )
    assert ch.scheme == "bearer"
    assert ch.params == {
        "realm": "https://auth.docker.io/token",
        "service": "registry.docker.io",
        "scope": "repository:library/busybox:pull",
    }
    assert parse_challenges('Basic realm="x"')[0].scheme == "basic"
    config = tmp_path / "config.json"
    hub = base64.b64encode(b"me:pw").decode()
    config.write_text(
        json.dumps(
            {
                "auths": {
                    "https://index.docker.io/v1/": {"auth": hub},
                    "example.com:5000": {"username": "a", "password": "b"},
                    "helped.example.com": {},
                },
                "credHelpers": {"ecr.example.com": "skiff-missing-helper"},
            }
        )
    )
    creds = load_credentials("docker.io", config)
    assert creds is not None and (creds.username, creds.password) == ("me", "pw")
    creds = load_credentials("example.com:5000", config)
    assert creds is not None and creds.username == "a"
    assert load_credentials("other.example.com", config) is None
    from skiff.errors import InvalidArgument

    with pytest.raises(InvalidArgument, match="not installed"):
        load_credentials("ecr.example.com", config)
    assert load_credentials("helped.example.com", config) is None


class TokenFront:
    """An HTTP front to the registry that wants Bearer tokens, and the token server
    that hands them out (``/token``, Basic auth checked when ``user`` is set): the
    Docker Hub scheme, on 127.0.0.1."""

    def __init__(
        self,
        upstream: str,
        user: str = "",
        password: str = "",
        *,
        bearer: bool = True,
        fail_blob_gets: int = 0,
        redirect_blobs: bool = False,
    ) -> None:
        import http.client
        import http.server
        import secrets
        import urllib.parse

        front = self
        self.token_requests: list[dict[str, Any]] = []
        self.tokens: dict[str, list[str]] = {}
        self.failures_left = fail_blob_gets
        self.failed: list[str] = []
        self.redirected: list[str] = []

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def _token(self) -> None:
                query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
                auth = self.headers.get("Authorization", "")
                front.token_requests.append({"query": query, "auth": auth})
                if user:
                    want = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
                    if auth != want:
                        self._send(401, b'{"details":"bad credentials"}', {})
                        return
                token = secrets.token_hex(16)
                front.tokens[token] = query.get("scope", [])
                body = json.dumps({"token": token, "expires_in": 300}).encode()
                self._send(200, body, {"Content-Type": "application/json"})

            def _proxy(self) -> None:
                if self.path.startswith("/token"):
                    self._token()
                    return
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                if self.command == "GET" and "/blobs/" in self.path and front.failures_left > 0:
                    front.failures_left -= 1
                    front.failed.append(self.path)
                    self._send(503, b'{"errors":[{"code":"UNAVAILABLE","message":"busy"}]}', {})
                    return
                if self.command == "GET" and "/blobs/" in self.path and redirect_blobs:
                    front.redirected.append(self.path)  # to "storage": the registry itself
                    self._send(307, b"", {"Location": f"http://{upstream}{self.path}"})
                    return
                auth = self.headers.get("Authorization", "")
                token = auth.removeprefix("Bearer ")
                if bearer and (not auth.startswith("Bearer ") or token not in front.tokens):
                    challenge = f'Bearer realm="http://{front.host}/token",service="skiff-test"'
                    parts = self.path.split("/")
                    if len(parts) > 4 and parts[1] == "v2":
                        name = "/".join(parts[2:-2])
                        action = "pull" if self.command in ("GET", "HEAD") else "pull,push"
                        challenge += f',scope="repository:{name}:{action}"'
                    self._send(401, b"{}", {"WWW-Authenticate": challenge})
                    return
                conn = http.client.HTTPConnection(*upstream.split(":"), timeout=60)
                headers = {k: v for k, v in self.headers.items() if k.lower() != "authorization"}
                conn.request(self.command, self.path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                out = {
                    k: v
                    for k, v in resp.getheaders()
                    if k.lower() not in ("content-length", "transfer-encoding", "connection")
                }
                if "Location" in out and out["Location"].startswith(f"http://{upstream}"):
                    out["Location"] = out["Location"].replace(upstream, front.host, 1)
                self._send(resp.status, data, out)
                conn.close()

            do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _proxy

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.host = f"127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


def test_bearer_tokens(
    registry: Registry, stores: StoreFactory, busybox_tar: Path, tmp_path: Path
) -> None:
    front = TokenFront(registry.host, user="tok", password="pw")
    try:
        name = f"{front.host}/tok/busybox:v1"
        src, image_id = _source(stores, busybox_tar, name)
        empty = tmp_path / "empty.json"
        empty.write_text("{}")
        with pytest.raises(Unauthorized):
            push(src, name, config_path=empty)
        config = _write_config(tmp_path / "cfg", front.host, "tok", "pw")
        digest = push(src, name, config_path=config)
        pushes = [r for r in front.token_requests if r["auth"].startswith("Basic ")]
        # One token for the whole push (the first challenge's scope is added to ours).
        assert len(pushes) == 1
        assert any(
            "repository:tok/busybox:pull,push" in r["query"].get("scope", [])
            and r["query"].get("service") == ["skiff-test"]
            for r in pushes
        )
        dst = stores()
        record = pull(dst, name, config_path=config)
        assert record.id == image_id
        assert dst.inspect(name)["RepoDigests"] == [f"{front.host}/tok/busybox@{digest}"]
        # One token per operation and scope: the pull asked for one, then reused it.
        pulls = [
            r
            for r in front.token_requests
            if r["query"].get("scope") == ["repository:tok/busybox:pull"]
        ]
        assert len(pulls) == 1
    finally:
        front.close()


def test_anonymous_bearer_token(
    registry: Registry, stores: StoreFactory, busybox_tar: Path, tmp_path: Path
) -> None:
    name = f"{registry.host}/anon/busybox:v1"
    src, image_id = _source(stores, busybox_tar, name)
    digest = push(src, name)
    front = TokenFront(registry.host)
    try:
        dst = stores()
        empty = tmp_path / "empty.json"
        empty.write_text("{}")
        record = pull(dst, f"{front.host}/anon/busybox@{digest}", config_path=empty)
        assert record.id == image_id
        assert front.token_requests and all(r["auth"] == "" for r in front.token_requests)
    finally:
        front.close()


def _layer_tar(files: dict[str, bytes]) -> bytes:
    import gzip
    import io
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path, data in files.items():
            info = tarfile.TarInfo(path)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    return gzip.compress(buf.getvalue(), mtime=0)


def _multi_layer_layout(dest: Path, count: int) -> None:
    """An OCI layout of a ``count``-layer image (random file contents, so the layers
    are large enough to stream), tagged ``v1``."""
    import gzip
    import os

    blobs = dest / "blobs" / "sha256"
    blobs.mkdir(parents=True)

    def put(data: bytes) -> str:
        digest = digest_bytes(data)
        (blobs / digest.split(":")[1]).write_bytes(data)
        return digest

    layers, diff_ids = [], []
    for i in range(count):
        blob = _layer_tar(
            {f"layer{i}.bin": os.urandom(300_000 + i), "shared.txt": f"{i}\n".encode()}
        )
        layers.append(
            {
                "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                "digest": put(blob),
                "size": len(blob),
            }
        )
        diff_ids.append(digest_bytes(gzip.decompress(blob)))
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "config": {},
        }
    ).encode()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": put(config),
                "size": len(config),
            },
            "layers": layers,
        }
    ).encode()
    index = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": put(manifest),
                "size": len(manifest),
                "annotations": {"org.opencontainers.image.ref.name": "v1"},
            }
        ],
    }
    (dest / "index.json").write_text(json.dumps(index))
    (dest / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')


class UnpackSpy:
    """Counts native unpacks by source kind: a pipe (streamed) or a stored blob."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        from skiff import _native

        self.streamed = 0
        self.from_path = 0
        real = _native.unpack_layer

        def spy(src: Any, dest: Any, **kwargs: Any) -> Any:
            if isinstance(src, int):
                self.streamed += 1
            else:
                self.from_path += 1
            return real(src, dest, **kwargs)

        monkeypatch.setattr(_native, "unpack_layer", spy)


def test_multi_layer_pull_streams_every_layer(
    registry: Registry, stores: StoreFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    layout = tmp_path / "layout"
    _multi_layer_layout(layout, 5)
    name = f"{registry.host}/multi/image:v1"
    _skopeo("copy", "--dest-tls-verify=false", f"oci:{layout}:v1", f"docker://{name}")
    spy = UnpackSpy(monkeypatch)
    dst = stores()
    log = Log()
    record = pull(dst, name, concurrency=3, progress=log)
    assert (spy.streamed, spy.from_path) == (5, 0)
    index = json.loads((layout / "index.json").read_text())
    manifest = json.loads(
        (layout / "blobs/sha256" / index["manifests"][0]["digest"][7:]).read_text()
    )
    assert record.id == manifest["config"]["digest"]  # the exact config bytes are kept
    assert len(record.chain) == 5
    lowers = dst.snapshots.lowers(record.chain)  # top first
    assert (lowers[0] / "shared.txt").read_text() == "4\n"
    assert (lowers[-1] / "layer0.bin").stat().st_size == 300_000
    assert log.statuses().count("Pull complete") == 5
    assert log.statuses().count("Waiting") == 2  # 5 layers, 3 at a time

    # Skiff pushes it on; a pull from the other repository gets the same image.
    other = f"{registry.host}/multi/copy:v1"
    dst.tag(record.id, other)
    log = Log()
    push(dst, other, progress=log)
    # Same registry: the blobs are mounted from the repository they were pulled from.
    assert log.statuses().count("Mounted from multi/image") == 5
    assert "Pushed" not in log.statuses()
    again = stores()
    assert pull(again, other).id == record.id


def test_resumed_download_keeps_streaming(
    registry: Registry, stores: StoreFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    layout = tmp_path / "layout"
    _multi_layer_layout(layout, 1)
    name = f"{registry.host}/resume/stream:v1"
    _skopeo("copy", "--dest-tls-verify=false", f"oci:{layout}:v1", f"docker://{name}")
    index = json.loads((layout / "index.json").read_text())
    manifest = json.loads(
        (layout / "blobs/sha256" / index["manifests"][0]["digest"][7:]).read_text()
    )
    layer = manifest["layers"][0]["digest"]
    spy = UnpackSpy(monkeypatch)
    proxy = CuttingProxy(registry.host, layer, cut=100_000)
    try:
        dst = stores()
        pull(dst, f"{proxy.host}/resume/stream:v1")
    finally:
        proxy.close()
    assert proxy.cuts == 1
    assert any(b"\r\nRange: bytes=" in r for r in proxy.requests)
    assert (spy.streamed, spy.from_path) == (1, 0)


def _index_layout(dest: Path) -> dict[str, str]:
    """An OCI layout tagged ``v1`` whose index has an amd64 and an arm64 image;
    returns arch -> manifest digest."""
    import gzip

    blobs = dest / "blobs" / "sha256"
    blobs.mkdir(parents=True)

    def put(data: bytes) -> str:
        digest = digest_bytes(data)
        (blobs / digest.split(":")[1]).write_bytes(data)
        return digest

    entries, out = [], {}
    for arch in ("amd64", "arm64"):
        blob = _layer_tar({"arch.txt": arch.encode()})
        config = json.dumps(
            {
                "architecture": arch,
                "os": "linux",
                "rootfs": {"type": "layers", "diff_ids": [digest_bytes(gzip.decompress(blob))]},
                "config": {},
            }
        ).encode()
        manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {
                    "mediaType": "application/vnd.oci.image.config.v1+json",
                    "digest": put(config),
                    "size": len(config),
                },
                "layers": [
                    {
                        "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                        "digest": put(blob),
                        "size": len(blob),
                    }
                ],
            }
        ).encode()
        out[arch] = put(manifest)
        entries.append(
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": out[arch],
                "size": len(manifest),
                "platform": {"architecture": arch, "os": "linux"},
            }
        )
    image_index = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": entries,
        }
    ).encode()
    digest = put(image_index)
    layout_index = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": "application/vnd.oci.image.index.v1+json",
                "digest": digest,
                "size": len(image_index),
                "annotations": {"org.opencontainers.image.ref.name": "v1"},
            }
        ],
    }
    (dest / "index.json").write_text(json.dumps(layout_index))
    (dest / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    out["index"] = digest
    return out


def test_pull_from_an_index_picks_the_platform(
    registry: Registry, stores: StoreFactory, tmp_path: Path
) -> None:
    from skiff.image.platform import host_platform

    layout = tmp_path / "layout"
    digests = _index_layout(layout)
    name = f"{registry.host}/multiarch/image:v1"
    _skopeo(
        "copy",
        "--all",
        "--preserve-digests",
        "--dest-tls-verify=false",
        f"oci:{layout}:v1",
        f"docker://{name}",
    )
    svc = stores()
    arm = pull(svc, name, platform="linux/arm64")
    assert json.loads(arm.config)["architecture"] == "arm64"
    assert (svc.snapshots.lowers(arm.chain)[0] / "arch.txt").read_text() == "arm64"
    # The repository digest is the index's, as Docker records it.
    assert svc.meta.digests_of(arm.id) == [f"{registry.host}/multiarch/image@{digests['index']}"]
    if host_platform().architecture in ("amd64", "arm64"):
        other = stores()
        native = pull(other, name)
        assert json.loads(native.config)["architecture"] == host_platform().architecture
    with pytest.raises(NotFound):
        pull(stores(), name, platform="linux/s390x")


def test_concurrent_pulls_of_one_image(
    registry: Registry, stores: StoreFactory, tmp_path: Path
) -> None:
    layout = tmp_path / "layout"
    _multi_layer_layout(layout, 3)
    name = f"{registry.host}/together/image:v1"
    _skopeo("copy", "--dest-tls-verify=false", f"oci:{layout}:v1", f"docker://{name}")
    svc = stores()
    results: list[str] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            results.append(pull(svc, name).id)
        except BaseException as err:
            errors.append(err)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == []
    assert len(set(results)) == 1 and len(results) == 3
    assert svc.meta.incomplete_layers() == []
    assert svc.content.ingest_refs() == []


def test_server_errors_are_retried(
    registry: Registry, stores: StoreFactory, busybox_tar: Path
) -> None:
    from skiff.errors import Unavailable

    name = f"{registry.host}/flaky/busybox:v1"
    src, image_id = _source(stores, busybox_tar, name)
    push(src, name)
    front = TokenFront(registry.host, bearer=False, fail_blob_gets=2)
    try:
        assert pull(stores(), f"{front.host}/flaky/busybox:v1").id == image_id
        assert len(front.failed) == 2
        front.failures_left = 1000  # more than any retry budget
        with pytest.raises(Unavailable):
            pull(stores(), f"{front.host}/flaky/busybox:v1")
    finally:
        front.close()


def test_endpoints() -> None:
    from skiff.registry.transport import endpoint

    assert endpoint("docker.io") == "https://registry-1.docker.io"
    assert endpoint("localhost:5000") == "http://localhost:5000"
    assert endpoint("127.1.2.3:80") == "http://127.1.2.3:80"
    assert endpoint("[::1]:5000") == "http://[::1]:5000"
    assert endpoint("registry.example.com") == "https://registry.example.com"
    assert endpoint("10.0.0.1:5000", insecure=["10.0.0.1:5000"]) == "http://10.0.0.1:5000"


def test_docker_schema2_image(registry: Registry, stores: StoreFactory, tmp_path: Path) -> None:
    layout = tmp_path / "layout"
    _multi_layer_layout(layout, 2)
    name = f"{registry.host}/schema2/image:v1"
    _skopeo(
        "copy",
        "--format",
        "v2s2",
        "--dest-tls-verify=false",
        f"oci:{layout}:v1",
        f"docker://{name}",
    )
    raw = subprocess.run(
        ["skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{name}"],
        check=True,
        capture_output=True,
        timeout=60,
    ).stdout
    manifest = json.loads(raw)
    assert manifest["mediaType"] == "application/vnd.docker.distribution.manifest.v2+json"
    svc = stores()
    record = pull(svc, name)
    assert record.id == manifest["config"]["digest"]
    assert svc.meta.digests_of(record.id) == [f"{registry.host}/schema2/image@{digest_bytes(raw)}"]
    # Pushed on by Skiff as an OCI manifest of the same blobs.
    other = f"{registry.host}/schema2/copy:v1"
    svc.tag(record.id, other)
    push(svc, other)
    pushed = json.loads(
        subprocess.run(
            ["skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{other}"],
            check=True,
            capture_output=True,
            timeout=60,
        ).stdout
    )
    assert pushed["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert pushed["config"]["digest"] == record.id
    assert [x["digest"] for x in pushed["layers"]] == [x["digest"] for x in manifest["layers"]]
    assert {x["mediaType"] for x in pushed["layers"]} == {
        "application/vnd.oci.image.layer.v1.tar+gzip"
    }


def test_one_corrupt_layer_of_several(
    registry: Registry, stores: StoreFactory, tmp_path: Path
) -> None:
    layout = tmp_path / "layout"
    _multi_layer_layout(layout, 4)
    name = f"{registry.host}/corrupt/multi:v1"
    _skopeo("copy", "--dest-tls-verify=false", f"oci:{layout}:v1", f"docker://{name}")
    index = json.loads((layout / "index.json").read_text())
    manifest = json.loads(
        (layout / "blobs/sha256" / index["manifests"][0]["digest"][7:]).read_text()
    )
    bad = manifest["layers"][2]["digest"]
    data = registry.blob_data(bad)
    blob = bytearray(data.read_bytes())
    blob[len(blob) // 2] ^= 0xFF  # one flipped byte in the middle of the gzip stream
    data.write_bytes(bytes(blob))
    svc = stores()
    with pytest.raises(DigestMismatch):
        pull(svc, name)
    assert not svc.content.exists(bad)
    assert svc.meta.list_images() == []
    assert svc.meta.list_layers() == []  # nothing committed before every blob checked out
    staging = svc.snapshots.staging
    assert not staging.exists() or list(staging.iterdir()) == []


def test_blob_redirects_are_followed(
    registry: Registry, stores: StoreFactory, busybox_tar: Path
) -> None:
    name = f"{registry.host}/redirect/busybox:v1"
    src, image_id = _source(stores, busybox_tar, name)
    push(src, name)
    front = TokenFront(registry.host, redirect_blobs=True)
    try:
        assert pull(stores(), f"{front.host}/redirect/busybox:v1").id == image_id
        assert len(front.redirected) == 2  # config and layer
    finally:
        front.close()


def _tls_material(d: Path) -> tuple[Path, Path, Path]:
    """A throwaway CA and a server certificate for 127.0.0.1 signed by it."""
    ca, _ = make_ca(d)
    cert, key = make_cert(d, "server", ip="127.0.0.1")
    return ca, cert, key


def test_tls_registry_trusted_through_certs_d(
    stores: StoreFactory, busybox_tar: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from skiff.errors import SkiffError
    from tests.support.registry import start_registry

    ca, cert, key = _tls_material(tmp_path)
    reg = start_registry(short_tmpdir("skiff-reg-tls-"), tls=(cert, key))
    try:
        certs_d = tmp_path / "certs.d"
        (certs_d / reg.host).mkdir(parents=True)
        shutil.copy(ca, certs_d / reg.host / "ca.crt")
        monkeypatch.setenv("SKIFF_CERTS_D", str(certs_d))
        ref = f"{reg.host}/tls/busybox:1"
        src = stores()
        rec = src.import_tar(busybox_tar, tag=ref)
        digest = push(src, ref)
        dst = stores()
        assert pull(dst, ref).id == rec.id
        assert f"{reg.host}/tls/busybox@{digest}" in dst.inspect(ref)["RepoDigests"]
        # The same registry without its CA: TLS is still used, and not trusted.
        (certs_d / reg.host / "ca.crt").unlink()
        with pytest.raises(SkiffError):
            pull(stores(), ref)
    finally:
        reg.stop()


@pytest.mark.parametrize("how", ["credHelpers", "credsStore"])
def test_credentials_from_a_credential_helper(
    stores: StoreFactory,
    registry_auth: Registry,
    busybox_tar: Path,
    tmp_path: Path,
    how: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    helper = bindir / "docker-credential-skifftest"
    helper.write_text(
        HELPER_SCRIPT.format(
            server=registry_auth.host, user=registry_auth.user, password=registry_auth.password
        )
    )
    helper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")
    config = tmp_path / "config.json"
    entry: dict[str, Any] = (
        {"credHelpers": {registry_auth.host: "skifftest"}}
        if how == "credHelpers"
        else {"credsStore": "skifftest"}
    )
    config.write_text(json.dumps(entry))
    ref = f"{registry_auth.host}/helped/busybox:1"
    src = stores()
    rec = src.import_tar(busybox_tar, tag=ref)
    push(src, ref, config_path=config)
    assert pull(stores(), ref, config_path=config).id == rec.id
    # A server the helper does not know: no credentials, so the registry refuses.
    assert load_credentials("elsewhere.example.com", config) is None


def test_docker_io_images_come_from_a_mirror(
    stores: StoreFactory, registry: Registry, busybox_tar: Path
) -> None:
    """`busybox` is docker.io/library/busybox: with a mirror configured it is pulled
    from the mirror (this machine cannot reach Docker Hub); a dead mirror before it is
    skipped."""
    src = stores()
    rec = src.import_tar(busybox_tar, tag=f"{registry.host}/library/busybox:latest")
    push(src, f"{registry.host}/library/busybox:latest")
    dst = stores()
    dead = f"http://127.0.0.1:{_dead_port()}"
    pulled = pull(dst, "busybox", mirrors=[dead, f"http://{registry.host}"])
    assert pulled.id == rec.id
    assert dst.inspect("busybox")["RepoTags"] == ["busybox:latest"]


def _dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_chunked_push(stores: StoreFactory, registry: Registry, busybox_tar: Path) -> None:
    """Blobs go up as PATCH chunks (Content-Range) and a closing PUT with the digest."""
    ref = f"{registry.host}/chunked/busybox:1"
    src = stores()
    rec = src.import_tar(busybox_tar, tag=ref)
    digest = push(src, ref, chunk_size=256 * 1024)
    layer = src.manifest_of(rec.id).layers[0]
    assert layer.size > 256 * 1024  # it really took several chunks
    assert registry.blob_data(layer.digest).stat().st_size == layer.size
    dst = stores()
    assert pull(dst, ref).id == rec.id
    assert f"{registry.host}/chunked/busybox@{digest}" in dst.inspect(ref)["RepoDigests"]


def test_login_and_logout_with_the_cli(registry_auth: Registry, tmp_path: Path) -> None:
    """`skiff login` checks the password against the registry and keeps it in
    config.json (mode 0600), where pulls find it; `skiff logout` forgets it."""
    import sys

    env = {**os.environ, "DOCKER_CONFIG": str(tmp_path)}
    skiff = [sys.executable, "-m", "skiff.cli"]
    bad = subprocess.run(
        [*skiff, "login", registry_auth.host, "-u", registry_auth.user, "--password-stdin"],
        input="wrong\n",
        capture_output=True,
        text=True,
        env=env,
    )
    assert bad.returncode != 0 and "Traceback" not in bad.stderr
    assert not (tmp_path / "config.json").exists()
    ok = subprocess.run(
        [*skiff, "login", registry_auth.host, "-u", registry_auth.user, "--password-stdin"],
        input=registry_auth.password + "\n",
        capture_output=True,
        text=True,
        env=env,
    )
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.strip() == "Login Succeeded"
    config = tmp_path / "config.json"
    assert (config.stat().st_mode & 0o777) == 0o600
    creds = load_credentials(registry_auth.host, config)
    assert creds is not None and (creds.username, creds.password) == (
        registry_auth.user,
        registry_auth.password,
    )
    out = subprocess.run(
        [*skiff, "logout", registry_auth.host], capture_output=True, text=True, env=env
    )
    assert out.stdout.strip() == f"Removing login credentials for {registry_auth.host}"
    assert load_credentials(registry_auth.host, config) is None
