"""Layer diff of a real overlayfs upper dir: changes made through a mounted overlay,
the upper dir diffed, the layer applied over a copy of the lower with whiteouts, and
the result compared with what the mounted overlay showed."""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import os
import shutil
import stat
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from skiff import _native
from tests.unit.test_native_diff import (
    ADDED,
    DELETED,
    MODIFIED,
    apply_layer,
    copy_tree,
    tree_state,
)

pytestmark = pytest.mark.root


@contextlib.contextmanager
def overlay(lower: Path, base: Path) -> Iterator[tuple[Path, Path]]:
    """Mounts ``lower`` under a fresh upper; yields (merged, upper); always unmounts."""
    upper, work, merged = base / "upper", base / "work", base / "merged"
    for d in (upper, work, merged):
        d.mkdir()
    # Skiff mounts without redirect_dir and metacopy; say so, whatever the kernel default.
    options = f"lowerdir={lower},upperdir={upper},workdir={work},redirect_dir=off,metacopy=off"
    subprocess.run(["mount", "-t", "overlay", "overlay", "-o", options, str(merged)], check=True)
    try:
        yield merged, upper
    finally:
        if subprocess.run(["umount", str(merged)], check=False).returncode != 0:
            subprocess.run(["umount", "-l", str(merged)], check=True)


@pytest.fixture
def base() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="skiff-diff-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def make_lower(lower: Path) -> None:
    (lower / "etc").mkdir(parents=True)
    (lower / "etc/passwd").write_text("root:x:0:0::/root:/bin/sh\n")
    (lower / "etc/hostname").write_text("lower\n")
    (lower / "etc/keep").write_text("renamed later\n")
    (lower / "etc/chmod-me").write_text("mode\n")
    (lower / "bin").mkdir()
    (lower / "bin/busybox").write_bytes(b"\x7fELF" + bytes(10_000))
    os.chmod(lower / "bin/busybox", 0o755)
    os.symlink("busybox", lower / "bin/sh")
    os.link(lower / "bin/busybox", lower / "bin/ls")
    (lower / "data/old/b").mkdir(parents=True)
    (lower / "data/old/a").write_text("a")
    (lower / "data/old/b/c").write_text("c")
    (lower / "data/other").write_text("untouched")
    (lower / "gone/x").mkdir(parents=True)
    (lower / "gone/x/y").write_text("y")
    (lower / "delete-me").write_text("d")
    (lower / "file-to-dir").write_text("f")
    (lower / "dir-to-file").mkdir()
    (lower / "dir-to-file/child").write_text("c")
    os.symlink("a", lower / "retarget")
    (lower / "dev").mkdir()
    os.mknod(lower / "dev/null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    os.mkfifo(lower / "pipe")


def change_merged(merged: Path) -> None:
    with (merged / "etc/passwd").open("a") as f:
        f.write("user:x:1000:1000::/home/user:/bin/sh\n")
    os.chown(merged / "etc/hostname", 1000, 1000)
    os.chmod(merged / "etc/chmod-me", 0o600)
    os.rename(merged / "etc/keep", merged / "etc/kept")
    os.unlink(merged / "delete-me")
    shutil.rmtree(merged / "gone")
    # Replace a directory by a new one: overlayfs makes it opaque.
    shutil.rmtree(merged / "data/old")
    (merged / "data/old").mkdir(mode=0o750)
    (merged / "data/old/fresh").write_text("fresh")
    os.unlink(merged / "file-to-dir")
    (merged / "file-to-dir").mkdir()
    (merged / "file-to-dir/inside").write_text("i")
    shutil.rmtree(merged / "dir-to-file")
    (merged / "dir-to-file").write_text("now a file")
    os.unlink(merged / "retarget")
    os.symlink("b", merged / "retarget")
    (merged / "new/dir").mkdir(parents=True)
    (merged / "new/dir/file").write_bytes(os.urandom(3 << 20))
    os.link(merged / "new/dir/file", merged / "new/hardlink")
    os.mkfifo(merged / "new/fifo")
    os.mknod(merged / "new/zero", stat.S_IFCHR | 0o666, os.makedev(1, 5))
    (merged / "new/tagged").write_text("t")
    os.setxattr(merged / "new/tagged", "user.note", b"\x00binary\xff")
    os.symlink("/" + "long/" * 40, merged / "new/longlink")
    (merged / "new" / ("n" * 200)).write_text("long name")


def test_overlay_upper_diff_reproduces_the_merged_view(base: Path) -> None:
    lower = base / "lower"
    make_lower(lower)
    lower_state = tree_state(lower)
    with overlay(lower, base) as (merged, upper):
        change_merged(merged)
        expected = tree_state(merged)
        # Diffing while mounted (a paused container) and after give the same layer.
        mounted = _native.diff_upper(upper, base / "mounted.tgz", lowers=[lower])
    assert tree_state(lower) == lower_state
    # The kernel really left overlayfs's markers: whiteout devices and an opaque dir.
    for gone in ("delete-me", "gone", "etc/keep"):
        st = os.lstat(upper / gone)
        assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0, gone
    assert os.getxattr(upper / "data/old", "trusted.overlay.opaque") == b"y"

    stats = _native.diff_upper(upper, base / "layer.tgz", lowers=[lower])
    assert stats == mounted
    again = _native.diff_upper(upper, base / "again.tgz", lowers=[lower])
    assert again == stats
    assert (base / "again.tgz").read_bytes() == (base / "layer.tgz").read_bytes()

    blob = (base / "layer.tgz").read_bytes()
    assert stats["digest"] == f"sha256:{hashlib.sha256(blob).hexdigest()}"
    assert stats["size"] == len(blob)
    raw = gzip.decompress(blob)
    assert stats["diff_id"] == f"sha256:{hashlib.sha256(raw).hexdigest()}"
    assert stats["uncompressed_size"] == len(raw)

    with tarfile.open(base / "layer.tgz") as tar:
        members = tar.getmembers()
    names = [m.name for m in members]
    assert stats["entries"] == len(names)
    assert "data/old/.wh..wh..opq" in names
    assert names.index("data/old/.wh..wh..opq") == names.index("data/old") + 1
    for wh in ("etc/.wh.keep", ".wh.delete-me", ".wh.gone"):
        assert wh in names, wh
    assert not any(n.startswith("gone/") for n in names)
    for m in members:
        assert m.isdir() or m.isreg() or m.issym() or m.islnk() or m.ischr() or m.isfifo(), m.name
        assert not any("overlay" in k for k in m.pax_headers), (m.name, m.pax_headers)
    links = {m.name: m.linkname for m in members if m.islnk()}
    assert links == {"new/hardlink": "new/dir/file"}

    applied = base / "applied"
    copy_tree(lower, applied)
    apply_layer(base / "layer.tgz", applied)
    assert tree_state(applied) == expected
    st = os.lstat(applied / "new/hardlink")
    assert st.st_ino == os.lstat(applied / "new/dir/file").st_ino

    # Without lowers the layer may carry more whiteouts, never a different result.
    plain = _native.diff_upper(upper, base / "plain.tgz")
    applied2 = base / "applied2"
    copy_tree(lower, applied2)
    apply_layer(base / "plain.tgz", applied2)
    assert tree_state(applied2) == expected
    assert plain["entries"] >= stats["entries"]

    assert _native.changes([lower], upper, overlay=True) == [
        ("/data", MODIFIED),
        ("/data/old", MODIFIED),
        ("/data/old/a", DELETED),
        ("/data/old/b", DELETED),
        ("/data/old/fresh", ADDED),
        ("/delete-me", DELETED),
        ("/dir-to-file", MODIFIED),
        ("/etc", MODIFIED),
        ("/etc/chmod-me", MODIFIED),
        ("/etc/hostname", MODIFIED),
        ("/etc/keep", DELETED),
        ("/etc/kept", ADDED),
        ("/etc/passwd", MODIFIED),
        ("/file-to-dir", MODIFIED),
        ("/file-to-dir/inside", ADDED),
        ("/gone", DELETED),
        ("/new", ADDED),
        ("/new/dir", ADDED),
        ("/new/dir/file", ADDED),
        ("/new/fifo", ADDED),
        ("/new/hardlink", ADDED),
        ("/new/longlink", ADDED),
        ("/new/" + "n" * 200, ADDED),
        ("/new/tagged", ADDED),
        ("/new/zero", ADDED),
        ("/retarget", MODIFIED),
    ]


def test_upper_diff_equals_tree_diff_of_the_same_change(base: Path) -> None:
    """The overlay path and the plain two-tree compare describe the same change: both
    layers applied over the lower give the merged view."""
    lower = base / "lower"
    make_lower(lower)
    with overlay(lower, base) as (merged, upper):
        change_merged(merged)
        snapshot = base / "snapshot"
        copy_tree(merged, snapshot)
    expected = tree_state(snapshot)
    _native.diff_trees(lower, snapshot, base / "trees.tgz")
    applied = base / "applied"
    copy_tree(lower, applied)
    apply_layer(base / "trees.tgz", applied)
    assert tree_state(applied) == expected
    # Both report the same paths with the same kinds.
    assert _native.changes(lower, snapshot, overlay=False) == _native.changes(
        [lower], upper, overlay=True
    )
