"""skiff._native layer diff: trees to layer blobs, read back with tarfile and hashlib;
layers applied over the old tree must give the new one; ``changes``; errors; GIL.

``apply_layer`` and ``tree_state`` are shared with tests/integration/test_diff_root.py.
"""

from __future__ import annotations

import errno
import gzip
import hashlib
import os
import shutil
import stat
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import pytest

from skiff import _native
from skiff.errors import InvalidArgument
from tests.support.gil import MIN_TICKS, ticks_during

MODIFIED, ADDED, DELETED = 0, 1, 2


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif os.path.lexists(path):
        path.unlink()


def apply_layer(layer: Path, root: Path) -> None:
    """Applies a gzip or plain layer over ``root`` as the OCI image spec says:
    ``.wh.<name>`` deletes, ``.wh..wh..opq`` empties its directory of what was there
    before, anything else replaces what is there (a directory only by a non-directory)."""
    with tarfile.open(layer, "r:*") as tar:
        for m in tar:
            rel = m.name.rstrip("/")
            parent, _, base = rel.rpartition("/")
            where = root / parent if parent else root
            if base == ".wh..wh..opq":
                for child in where.iterdir():
                    _remove(child)
                continue
            if base.startswith(".wh."):
                _remove(where / base[len(".wh.") :])
                continue
            path = root / rel
            if os.path.lexists(path) and not (
                m.isdir() and path.is_dir() and not path.is_symlink()
            ):
                _remove(path)
            if m.isdir():
                path.mkdir(exist_ok=True)
            elif m.isreg():
                src = tar.extractfile(m)
                assert src is not None
                path.write_bytes(src.read())
            elif m.issym():
                os.symlink(m.linkname, path)
            elif m.islnk():
                os.link(root / m.linkname, path)
                continue
            elif m.isfifo():
                os.mkfifo(path)
            elif m.ischr() or m.isblk():
                kind = stat.S_IFCHR if m.ischr() else stat.S_IFBLK
                os.mknod(path, kind | 0o600, os.makedev(m.devmajor, m.devminor))
            else:
                raise AssertionError(f"unexpected member {m.name} type {m.type!r}")
            if os.geteuid() == 0:
                os.lchown(path, m.uid, m.gid)
            if not m.issym():
                os.chmod(path, m.mode)
            for key, value in m.pax_headers.items():
                if key.startswith("SCHILY.xattr."):
                    raw = value.encode("utf-8", "surrogateescape")
                    os.setxattr(path, key[len("SCHILY.xattr.") :], raw, follow_symlinks=False)


def copy_tree(src: Path, dst: Path) -> None:
    """A faithful copy: hard links, fifos, mtimes, owners, xattrs."""
    subprocess.run(["cp", "-a", "--", str(src), str(dst)], check=True)


def _xattrs(path: str) -> tuple[tuple[str, bytes], ...]:
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return ()
    keep = sorted(n for n in names if n.startswith("user.") and not n.startswith("user.overlay."))
    return tuple((n, os.getxattr(path, n, follow_symlinks=False)) for n in keep)


def tree_state(root: Path) -> dict[str, tuple[Any, ...]]:
    """Every entry below ``root``: type, permission bits, owner, content (files),
    target (symlinks), device number, user xattrs."""
    state: dict[str, tuple[Any, ...]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            full = os.path.join(dirpath, name)
            st = os.lstat(full)
            rel = os.path.relpath(full, root)
            if stat.S_ISREG(st.st_mode):
                with open(full, "rb") as f:
                    body: Any = hashlib.sha256(f.read()).hexdigest()
            elif stat.S_ISLNK(st.st_mode):
                body = os.readlink(full)
            elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                body = (os.major(st.st_rdev), os.minor(st.st_rdev))
            else:
                body = None
            mode = 0 if stat.S_ISLNK(st.st_mode) else stat.S_IMODE(st.st_mode)
            state[rel] = (
                stat.S_IFMT(st.st_mode),
                mode,
                st.st_uid,
                st.st_gid,
                body,
                _xattrs(full),
            )
    return state


def _check_stats(blob: Path, stats: _native.DiffStats, *, compression: str = "gzip") -> bytes:
    """Checks the digests and sizes against hashlib; returns the uncompressed tar."""
    data = blob.read_bytes()
    assert stats["digest"] == f"sha256:{hashlib.sha256(data).hexdigest()}"
    assert stats["size"] == len(data)
    if compression == "gzip":
        assert data[:2] == b"\x1f\x8b"
        raw = gzip.decompress(data)
    elif compression == "none":
        raw = data
        assert stats["digest"] == stats["diff_id"]
    else:
        assert data[:4] == b"\x28\xb5\x2f\xfd"
        return b""
    assert stats["diff_id"] == f"sha256:{hashlib.sha256(raw).hexdigest()}"
    assert stats["uncompressed_size"] == len(raw)
    assert len(raw) % 512 == 0 and raw.endswith(b"\0" * 1024)
    return raw


def _members(raw: bytes) -> list[tarfile.TarInfo]:
    import io

    with tarfile.open(fileobj=io.BytesIO(raw), mode="r:") as tar:
        return tar.getmembers()


def _make_tree(root: Path) -> None:
    (root / "etc/conf.d").mkdir(parents=True)
    (root / "etc/passwd").write_text("root:x:0:0::/root:/bin/sh\n")
    (root / "etc/conf.d/a.conf").write_text("a=1\n")
    (root / "etc.txt").write_text("sorts after etc/\n")
    (root / "bin").mkdir()
    (root / "bin/busybox").write_bytes(b"\x7fELF" + bytes(5000))
    os.chmod(root / "bin/busybox", 0o755)
    os.symlink("busybox", root / "bin/sh")
    os.link(root / "bin/busybox", root / "bin/ls")
    os.mkfifo(root / "fifo")
    long_dir = root / ("long-" * 30) / ("deeper-" * 20)
    long_dir.mkdir(parents=True)
    (long_dir / "file.txt").write_text("deep\n")
    os.symlink("/" + "target/" * 30, root / "longlink")
    (root / "ünïcode").write_text("utf-8 name\n")


def test_tar_tree_lists_the_tree_in_order(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    _make_tree(root)
    stats = _native.tar_tree(root, tmp_path / "layer.tgz")
    assert set(stats) == {"digest", "size", "diff_id", "uncompressed_size", "entries"}
    raw = _check_stats(tmp_path / "layer.tgz", stats)
    members = _members(raw)
    assert stats["entries"] == len(members)
    names = [m.name for m in members]
    long_dir = ("long-" * 30) + "/" + ("deeper-" * 20)
    # tarfile strips the trailing slash of directory names.
    assert names == [
        "bin",
        "bin/busybox",
        "bin/ls",
        "bin/sh",
        "etc",
        "etc/conf.d",
        "etc/conf.d/a.conf",
        "etc/passwd",
        "etc.txt",
        "fifo",
        "long-" * 30,
        long_dir,
        f"{long_dir}/file.txt",
        "longlink",
        "ünïcode",
    ]
    by_name = {m.name: m for m in members}
    assert by_name["bin/busybox"].isreg() and by_name["bin/busybox"].mode == 0o755
    assert by_name["bin/ls"].islnk() and by_name["bin/ls"].linkname == "bin/busybox"
    assert by_name["bin/sh"].issym() and by_name["bin/sh"].linkname == "busybox"
    assert by_name["etc"].isdir() and by_name["fifo"].isfifo()
    assert by_name["longlink"].linkname == "/" + "target/" * 30
    assert all(m.uname == "" and m.gname == "" for m in members)
    # Directory names end with "/" in the archive itself.
    assert b"etc/conf.d/\0" in raw

    copy = tmp_path / "copy"
    copy.mkdir()
    apply_layer(tmp_path / "layer.tgz", copy)
    assert tree_state(copy) == tree_state(root)


@pytest.mark.parametrize("compression", ["gzip", "zstd", "none"])
def test_same_tree_same_digest(tmp_path: Path, compression: str) -> None:
    root = tmp_path / "root"
    root.mkdir()
    _make_tree(root)
    first = _native.tar_tree(root, tmp_path / "a", compression=compression)
    second = _native.tar_tree(root, tmp_path / "b", compression=compression)
    assert first == second
    assert (tmp_path / "a").read_bytes() == (tmp_path / "b").read_bytes()
    _check_stats(tmp_path / "a", first, compression=compression)


def test_levels_change_the_blob_not_the_tar(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    for i in range(50):
        (root / f"f{i}").write_text(f"file {i}\n" * 200)
    fast = _native.tar_tree(root, tmp_path / "fast", level=1)
    best = _native.tar_tree(root, tmp_path / "best", level=9)
    assert fast["diff_id"] == best["diff_id"]
    assert fast["digest"] != best["digest"]
    assert best["size"] <= fast["size"]
    _check_stats(tmp_path / "fast", fast)
    _check_stats(tmp_path / "best", best)


def _old_and_new(tmp_path: Path) -> tuple[Path, Path]:
    old = tmp_path / "old"
    old.mkdir()
    _make_tree(old)
    (old / "var/lib/gone/deep").mkdir(parents=True)
    (old / "var/lib/gone/deep/file").write_text("x")
    (old / "var/keep").write_text("k")
    new = tmp_path / "new"
    copy_tree(old, new)
    return old, new


def test_identical_trees_have_no_changes(tmp_path: Path) -> None:
    old, new = _old_and_new(tmp_path)
    assert _native.changes(old, new, overlay=False) == []
    stats = _native.diff_trees(old, new, tmp_path / "layer")
    assert stats["entries"] == 0
    assert _members(_check_stats(tmp_path / "layer", stats)) == []


def test_diff_trees_applied_over_old_gives_new(tmp_path: Path) -> None:
    old, new = _old_and_new(tmp_path)
    (new / "etc/passwd").write_text("root:x:0:0::/root:/bin/ash\nuser:x:1000:1000::/home:/bin/sh\n")
    (new / "etc/conf.d/b.conf").write_text("b=2\n")
    os.chmod(new / "etc.txt", 0o600)
    shutil.rmtree(new / "var/lib/gone")
    os.unlink(new / "bin/sh")
    os.symlink("/bin/busybox", new / "bin/sh")
    os.unlink(new / "fifo")
    (new / "fifo").mkdir()
    (new / "fifo/now-a-dir").write_text("d")
    shutil.rmtree(new / "etc/conf.d")
    (new / "etc/conf.d").write_text("now a file\n")
    (new / "added/nested").mkdir(parents=True)
    (new / "added/nested/f").write_text("f")
    os.setxattr(new / "added/nested/f", "user.note", b"\x00\xfftagged")

    got = _native.changes(old, new, overlay=False)
    assert got == [
        ("/added", ADDED),
        ("/added/nested", ADDED),
        ("/added/nested/f", ADDED),
        ("/bin", MODIFIED),
        ("/bin/sh", MODIFIED),
        ("/etc", MODIFIED),
        ("/etc/conf.d", MODIFIED),
        ("/etc/passwd", MODIFIED),
        ("/etc.txt", MODIFIED),
        ("/fifo", MODIFIED),
        ("/fifo/now-a-dir", ADDED),
        ("/var", MODIFIED),
        ("/var/lib", MODIFIED),
        ("/var/lib/gone", DELETED),
    ]

    stats = _native.diff_trees(old, new, tmp_path / "layer.tgz")
    members = _members(_check_stats(tmp_path / "layer.tgz", stats))
    names = [m.name for m in members]
    assert "var/lib/.wh.gone" in names
    assert not any(n.startswith("var/lib/gone") for n in names)
    assert stats["entries"] == len(members)

    applied = tmp_path / "applied"
    copy_tree(old, applied)
    apply_layer(tmp_path / "layer.tgz", applied)
    assert tree_state(applied) == tree_state(new)


def test_changes_of_an_upper_dir_against_lowers(tmp_path: Path) -> None:
    # Without root there are no whiteout devices; additions and modifications only.
    lower = tmp_path / "lower"
    (lower / "etc").mkdir(parents=True)
    (lower / "etc/passwd").write_text("old")
    upper = tmp_path / "upper"
    (upper / "etc").mkdir(parents=True)
    (upper / "etc/passwd").write_text("new")
    (upper / "etc/new").write_text("n")
    (upper / "srv/www").mkdir(parents=True)
    expected = [
        ("/etc", MODIFIED),
        ("/etc/new", ADDED),
        ("/etc/passwd", MODIFIED),
        ("/srv", ADDED),
        ("/srv/www", ADDED),
    ]
    assert _native.changes([lower], upper, overlay=True) == expected
    assert _native.changes(lower, upper, overlay=True) == expected
    assert _native.changes([str(tmp_path / "empty"), lower], upper, overlay=True) == expected
    assert all(kind == ADDED for _, kind in _native.changes([], upper, overlay=True))

    stats = _native.diff_upper(upper, tmp_path / "layer", lowers=[lower])
    names = [m.name for m in _members(_check_stats(tmp_path / "layer", stats))]
    assert names == ["etc", "etc/new", "etc/passwd", "srv", "srv/www"]


def test_bad_arguments(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    dest = tmp_path / "out" / "layer"
    dest.parent.mkdir()
    with pytest.raises(InvalidArgument, match="compression"):
        _native.tar_tree(root, dest, compression="lz4")
    for compression, level in (("gzip", 10), ("gzip", -1), ("zstd", 99)):
        with pytest.raises(InvalidArgument, match="level"):
            _native.tar_tree(root, dest, compression=compression, level=level)
    with pytest.raises(TypeError):
        _native.diff_upper(root, dest, lowers="not-a-list")
    with pytest.raises(TypeError):
        _native.changes([root], root, overlay=False)
    assert list(dest.parent.iterdir()) == []


def test_io_errors_leave_nothing_behind(tmp_path: Path) -> None:
    missing = tmp_path / "missing"
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(FileNotFoundError) as info:
        _native.tar_tree(missing, out / "layer")
    assert info.value.errno == errno.ENOENT
    assert info.value.filename == str(missing)
    with pytest.raises(FileNotFoundError):
        _native.diff_upper(missing, out / "layer")
    with pytest.raises(FileNotFoundError):
        _native.diff_trees(tmp_path, missing, out / "layer")
    with pytest.raises(FileNotFoundError):
        _native.changes(missing, tmp_path, overlay=False)
    with pytest.raises(FileNotFoundError) as info:
        _native.tar_tree(tmp_path, tmp_path / "no-such-dir" / "layer")
    assert info.value.filename == str(tmp_path / "no-such-dir" / "layer")
    (tmp_path / "a-file").write_text("f")
    with pytest.raises(NotADirectoryError):
        _native.tar_tree(tmp_path / "a-file", out / "layer")
    assert list(out.iterdir()) == []
    if os.geteuid() != 0:
        root = tmp_path / "root"
        root.mkdir()
        (root / "big").write_bytes(os.urandom(3 << 20))
        (root / "secret").write_text("s")
        os.chmod(root / "secret", 0)
        with pytest.raises(PermissionError):
            _native.tar_tree(root, out / "layer")
        assert list(out.iterdir()) == []


def test_long_diffs_release_the_gil(tmp_path: Path) -> None:
    """While one thread writes a large layer natively, another keeps running Python."""
    root = tmp_path / "root"
    root.mkdir()
    with (root / "big").open("wb") as f:
        chunk = os.urandom(1 << 20)
        for _ in range(128):
            f.write(chunk)
    _native.tar_tree(root, tmp_path / "warm", compression="none")
    during, _ = ticks_during(lambda: _native.tar_tree(root, tmp_path / "layer", level=1))
    assert during > MIN_TICKS, f"the counter ran only {during} times during the diff"
