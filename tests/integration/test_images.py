"""Images end to end: import, containers on overlayfs from an image, export, commit,
save/load (with skopeo and umoci on the same archives), remove and prune, a crash in
the middle of an unpack. All on real mounts, with the real runtime."""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from skiff import _native
from skiff.errors import Conflict, InvalidArgument, NotFound
from skiff.image import manifest as mf
from skiff.image.archive import load, save, save_layout
from skiff.image.commit import commit
from skiff.image.rootfs import RootfsMounter
from skiff.image.service import ImageService
from skiff.runtime.bundle import write_bundle
from skiff.runtime.driver import Runtime
from skiff.runtime.spec import default_config
from tests.conftest import short_tmpdir
from tests.support.daemon import CGROUP_PARENT

pytestmark = pytest.mark.root


@pytest.fixture
def store() -> Iterator[ImageService]:
    root = short_tmpdir("skiff-img-")
    svc = ImageService(root)
    yield svc
    svc.close()
    _umount_below(root)
    shutil.rmtree(root, ignore_errors=True)


def _umount_below(path: Path) -> None:
    points = [ln.split(" ")[4] for ln in Path("/proc/self/mountinfo").read_text().splitlines()]
    for p in sorted((p for p in points if p.startswith(f"{path}/")), key=len, reverse=True):
        subprocess.run(["umount", "-l", p], check=False)


class Container:
    """A container of an image: overlay rootfs, bundle, run through skiff-runtime."""

    def __init__(self, svc: ImageService, runtime: Runtime, image: str) -> None:
        self.svc, self.runtime = svc, runtime
        self.id = f"skc-{uuid.uuid4().hex[:10]}"
        self.dir = svc.root / "containers" / self.id
        self.rootfs = self.dir / "rootfs"
        self.upper = self.dir / "upper"
        img = svc.get(image)
        RootfsMounter(svc.root).mount(
            svc.snapshots.lowers(img.record.chain),
            self.rootfs,
            upper=self.upper,
            work=self.dir / "work",
        )

    def run(self, script: str) -> str:
        cfg = default_config(["/bin/sh", "-c", script], cgroups_path=f"/{CGROUP_PARENT}/{self.id}")
        cfg["root"]["path"] = str(self.rootfs)
        write_bundle(self.dir, cfg)
        out = self.runtime.run(self.id, self.dir)
        assert out.returncode == 0, out.stderr
        return out.stdout.decode()

    def close(self) -> None:
        RootfsMounter.unmount(self.rootfs)


def _tree(root: Path) -> dict[str, tuple[str, int, str]]:
    """path -> (type, mode, content or link target) of a whole tree."""
    out = {}
    for dirpath, dirs, files in os.walk(root):
        for name in dirs + files:
            p = Path(dirpath) / name
            rel = str(p.relative_to(root))
            st = os.lstat(p)
            if p.is_symlink():
                out[rel] = ("l", 0, os.readlink(p))
            elif p.is_dir():
                out[rel] = ("d", st.st_mode & 0o7777, "")
            else:
                out[rel] = ("f", st.st_mode & 0o7777, p.read_bytes().hex()[:64])
    return out


def test_import_inspect_list_tag_history(store: ImageService, busybox_tar: Path) -> None:
    rec = store.import_tar(busybox_tar, tag="skiff-test/busybox:1", message="from busybox-static")
    info = store.inspect("skiff-test/busybox:1")
    assert info["Id"] == rec.id and info["RepoTags"] == ["skiff-test/busybox:1"]
    assert info["Os"] == "linux" and len(info["RootFS"]["Layers"]) == 1
    assert info["Comment"] == "from busybox-static"
    store.tag("skiff-test/busybox:1", "localhost:5000/bb")
    assert sorted(store.inspect(rec.id[7:19])["RepoTags"]) == [
        "localhost:5000/bb:latest",
        "skiff-test/busybox:1",
    ]
    assert [i["Id"] for i in store.images()] == [rec.id]
    hist = store.history("skiff-test/busybox:1")
    assert (
        hist[0]["Id"] == rec.id
        and hist[0]["CreatedBy"] == "skiff import"
        and hist[0]["Size"] > 1_000_000
    )
    with pytest.raises(NotFound):
        store.inspect("nothing:here")
    # importing the same tar again gives the same layer, shared
    again = store.import_tar(busybox_tar)
    assert again.chain == rec.chain


def test_container_defaults_are_parsed_once_per_image(
    store: ImageService, busybox_tar: Path
) -> None:
    rec = store.import_tar(busybox_tar, tag="skiff-test/defaults:1")
    record, defaults = store.container_defaults("skiff-test/defaults:1")
    assert record.id == rec.id and defaults == store.get(rec.id).config.config
    again = store.container_defaults(rec.id[7:19])[1]
    assert again is defaults  # shared, not parsed again
    # Nothing changed: the name is not looked up again either.
    assert store.container_defaults("skiff-test/defaults:1")[0] is record
    # A tag moved to another image names that one, not what was cached.
    other = store.import_tar(
        busybox_tar,
        tag="skiff-test/defaults:1",
        container_config=mf.ContainerConfig(cmd=["echo", "other"]),
    )
    record, defaults = store.container_defaults("skiff-test/defaults:1")
    assert record.id == other.id != rec.id and defaults.cmd == ["echo", "other"]
    store.remove("skiff-test/defaults:1", force=True)
    with pytest.raises(NotFound):
        store.container_defaults("skiff-test/defaults:1")


def test_containers_share_the_image_layers(
    store: ImageService, runtime: Runtime, busybox_tar: Path
) -> None:
    store.import_tar(busybox_tar, tag="bb")
    a, b = Container(store, runtime, "bb"), Container(store, runtime, "bb")
    try:
        assert a.run("echo hi > /etc/motd; cat /etc/motd; ls /bin/busybox") == "hi\n/bin/busybox\n"
        assert (
            b.run("cat /etc/motd 2>&1 || true")
            == "cat: can't open '/etc/motd': No such file or directory\n"
        )
        assert (a.upper / "etc" / "motd").read_text() == "hi\n"
        layer = store.snapshots.fs(store.get("bb").record.chain[0])
        assert not (layer / "etc" / "motd").exists()
    finally:
        a.close()
        b.close()


def test_import_then_export_gives_the_same_tree(
    store: ImageService, busybox_tar: Path, tmp_path: Path
) -> None:
    store.import_tar(busybox_tar, tag="bb")
    original = tmp_path / "orig"
    original.mkdir()
    subprocess.run(["tar", "-xf", str(busybox_tar), "-C", str(original)], check=True)
    exported = tmp_path / "export.tar"
    view = tmp_path / "view"
    with store.rootfs_view("bb", view):
        _native.tar_tree(view, exported, compression="none")
    back = tmp_path / "back"
    back.mkdir()
    subprocess.run(["tar", "-xf", str(exported), "-C", str(back)], check=True)
    assert _tree(back) == _tree(original)


def test_commit_reproduces_the_changes(
    store: ImageService, runtime: Runtime, busybox_tar: Path
) -> None:
    store.import_tar(busybox_tar, tag="bb")
    c = Container(store, runtime, "bb")
    try:
        c.run(
            "mkdir -p /data/sub && echo one > /data/sub/f && echo changed > /etc/passwd && rm /bin/vi"
            " && rm -rf /var && mkdir /var && echo fresh > /var/only && ln -s /data/sub/f /data/link"
        )
        rec = commit(
            store, c.upper, "bb", tag="bb:committed", comment="a commit", created_by="test"
        )
    finally:
        c.close()
    info = store.inspect("bb:committed")
    assert len(info["RootFS"]["Layers"]) == 2
    assert info["Parent"] == store.get("bb").record.id
    fresh = Container(store, runtime, "bb:committed")
    try:
        out = fresh.run(
            "cat /data/sub/f /etc/passwd /var/only; readlink /data/link; ls /bin/vi 2>&1; ls /var"
        )
        assert out.splitlines() == [
            "one",
            "changed",
            "fresh",
            "/data/sub/f",
            "ls: /bin/vi: No such file or directory",
            "only",
        ]
    finally:
        fresh.close()
    # the same commit twice gives the same layer digest
    assert rec.chain[-1] == store.get("bb:committed").record.chain[-1]


def test_save_load_keeps_every_digest(
    store: ImageService, busybox_tar: Path, tmp_path: Path
) -> None:
    rec = store.import_tar(busybox_tar, tag="skiff-test/bb:v1")
    archive = tmp_path / "bb.tar"
    with archive.open("wb") as f:
        save(store, ["skiff-test/bb:v1"], f)
    other = ImageService(short_tmpdir("skiff-img2-"))
    try:
        assert load(other, archive) == ["Loaded image: skiff-test/bb:v1"]
        back = other.get("skiff-test/bb:v1")
        assert back.record.id == rec.id
        assert other.manifest_of(rec.id) == store.manifest_of(rec.id)
        assert back.record.chain == rec.chain
    finally:
        other.close()
        shutil.rmtree(other.root, ignore_errors=True)
    with tarfile.open(archive) as t:
        names = set(t.getnames())
    assert {"manifest.json", "index.json", "oci-layout"} <= names


@pytest.mark.skipif(
    shutil.which("skopeo") is None or shutil.which("umoci") is None, reason="skopeo/umoci missing"
)
def test_skopeo_and_umoci_read_our_archives(
    store: ImageService, busybox_tar: Path, tmp_path: Path
) -> None:
    store.import_tar(busybox_tar, tag="skiff-test/bb:v1")
    archive = tmp_path / "bb.tar"
    with archive.open("wb") as f:
        save(store, ["skiff-test/bb:v1"], f)
    layout = tmp_path / "layout"
    save_layout(store, ["skiff-test/bb:v1"], layout)
    # skopeo reads the docker archive and the OCI layout, and writes an OCI layout we load
    out = subprocess.run(
        ["skopeo", "inspect", f"docker-archive:{archive}"], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["Layers"] == [
        d.digest for d in store.manifest_of(store.get("skiff-test/bb:v1").record.id).layers
    ]
    copied = tmp_path / "copied"
    out = subprocess.run(
        ["skopeo", "copy", f"oci:{layout}:v1", f"oci:{copied}:again"],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    # umoci unpacks our layout
    bundle = tmp_path / "bundle"
    out = subprocess.run(
        ["umoci", "unpack", "--image", f"{layout}:v1", str(bundle)], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert (bundle / "rootfs" / "bin" / "busybox").exists()
    # and we load what skopeo wrote
    other = ImageService(short_tmpdir("skiff-img3-"))
    try:
        lines = load(other, copied)
        assert (
            lines
            and other.get(store.get("skiff-test/bb:v1").record.id).record.chain
            == store.get("skiff-test/bb:v1").record.chain
        )
    finally:
        other.close()
        shutil.rmtree(other.root, ignore_errors=True)


def test_remove_and_prune(store: ImageService, runtime: Runtime, busybox_tar: Path) -> None:
    rec = store.import_tar(busybox_tar, tag="bb:a")
    store.tag("bb:a", "bb:b")
    assert store.remove("bb:a") == [{"Untagged": "bb:a"}]
    with pytest.raises(Conflict, match="being used by a container"):
        store.remove("bb:b", in_use=True)
    blob_count = len(list(store.content.walk()))
    assert store.prune()["LayersDeleted"] == 0  # still referenced
    assert len(list(store.content.walk())) == blob_count
    assert store.remove("bb:b") == [{"Untagged": "bb:b"}, {"Deleted": rec.id}]
    result = store.prune()
    assert result["LayersDeleted"] == 1 and result["SpaceReclaimed"] > 0
    assert list(store.content.walk()) == []
    assert not store.snapshots.dir(rec.chain[0]).exists()


def test_hostile_import_leaves_nothing(store: ImageService, tmp_path: Path) -> None:
    bad = tmp_path / "bad.tar"
    with tarfile.open(bad, "w") as t:
        info = tarfile.TarInfo("../escape")
        info.size = 3
        t.addfile(info, io.BytesIO(b"bad"))
    with pytest.raises(InvalidArgument):
        store.import_tar(bad)
    assert not (store.root / "snapshots" / ".staging").exists() or not any(
        (store.root / "snapshots" / ".staging").iterdir()
    )
    assert not (tmp_path.parent / "escape").exists()
    assert store.meta.list_layers() == []


def test_kill_during_unpack_leaves_a_store_that_reopens_clean(tmp_path: Path) -> None:
    root = short_tmpdir("skiff-img-kill-")
    big = tmp_path / "big.tar"
    with tarfile.open(big, "w") as t:  # ~400 MiB of files: the unpack takes a while
        chunk = os.urandom(1 << 20)
        for i in range(400):
            info = tarfile.TarInfo(f"f{i}")
            info.size = len(chunk)
            t.addfile(info, io.BytesIO(chunk))
    code = f"from pathlib import Path; from skiff.image.service import ImageService; ImageService(Path({str(root)!r})).import_tar(Path({str(big)!r}), tag='big')"
    proc = subprocess.Popen([sys.executable, "-c", code])
    staging = root / "snapshots" / ".staging"
    deadline = time.monotonic() + 30
    while not (staging.exists() and any(staging.iterdir())):
        assert proc.poll() is None and time.monotonic() < deadline, "the import never started"
        time.sleep(0.01)
    time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    svc = ImageService(root)
    try:
        svc.recover()
        assert not any(staging.iterdir())
        assert svc.meta.incomplete_layers() == []
        assert svc.images() == []
        small = tmp_path / "small.tar"
        with tarfile.open(small, "w") as t:
            t.addfile(tarfile.TarInfo("empty"), io.BytesIO(b""))
        assert svc.import_tar(small, tag="ok").id
    finally:
        svc.close()
        shutil.rmtree(root, ignore_errors=True)


def test_prune_never_deletes_what_an_operation_holds(
    store: ImageService, busybox_tar: Path
) -> None:
    rec = store.import_tar(busybox_tar, tag="bb")
    manifest = store.manifest_of(rec.id)
    blobs = [manifest.config.digest, *(layer.digest for layer in manifest.layers)]
    with store.meta.lease() as lease:
        # An operation (a pull, a commit) holds these while it builds an image.
        for digest in blobs:
            store.meta.lease_add(lease, "blob", digest)
        store.meta.lease_add(lease, "layer", rec.chain[0])
        store.remove("bb")
        held = store.prune()
        assert held["LayersDeleted"] == 0 and held["BlobsDeleted"] == []
        assert all(store.content.exists(d) for d in blobs)
        assert store.snapshots.fs(rec.chain[0]).is_dir()
    freed = store.prune()
    assert freed["LayersDeleted"] == 1 and sorted(freed["BlobsDeleted"]) == sorted(blobs)
