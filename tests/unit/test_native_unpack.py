"""skiff._native.unpack_layer: round trips, whiteouts, digests, fd sources, GIL release,
and a corpus of hostile layers that must be refused (or contained) leaving nothing behind.

Root-only parts (overlay opaque xattrs, owners, device nodes, file capabilities) are in
tests/integration/test_unpack_root.py.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import shutil
import stat
import subprocess
import tarfile
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from skiff import _native
from skiff.errors import DigestMismatch, InvalidArgument
from tests.support.gil import MIN_TICKS, ticks_during

MTIME = 1_600_000_000


def _info(name: str, kind: bytes = tarfile.REGTYPE, **attrs: object) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mtime = MTIME
    info.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
    for key, value in attrs.items():
        setattr(info, key, value)
    return info


class Layer:
    """A tar built member by member with tarfile (PAX format), names taken verbatim."""

    def __init__(self) -> None:
        self._buf = io.BytesIO()
        self._tar = tarfile.TarFile(fileobj=self._buf, mode="w", format=tarfile.PAX_FORMAT)

    def file(self, name: str, data: bytes = b"", mode: int = 0o644) -> Layer:
        self._tar.addfile(_info(name, size=len(data), mode=mode), io.BytesIO(data))
        return self

    def dir(self, name: str, mode: int = 0o755) -> Layer:
        self._tar.addfile(_info(name, tarfile.DIRTYPE, mode=mode))
        return self

    def symlink(self, name: str, target: str) -> Layer:
        self._tar.addfile(_info(name, tarfile.SYMTYPE, linkname=target, mode=0o777))
        return self

    def hardlink(self, name: str, target: str) -> Layer:
        self._tar.addfile(_info(name, tarfile.LNKTYPE, linkname=target))
        return self

    def tar(self) -> bytes:
        self._tar.close()
        return self._buf.getvalue()


def gz(data: bytes) -> bytes:
    return gzip.compress(data, compresslevel=6, mtime=0)


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def write(tmp: Path, blob: bytes, name: str = "blob") -> Path:
    path = tmp / name
    path.write_bytes(blob)
    return path


def tree(root: Path) -> dict[str, str]:
    """Every path under root, with what it is."""
    out: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath, name)
            st = path.lstat()
            rel = str(path.relative_to(root))
            if stat.S_ISLNK(st.st_mode):
                out[rel] = "-> " + os.readlink(path)
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = "dir"
            elif stat.S_ISCHR(st.st_mode):
                out[rel] = f"chr {os.major(st.st_rdev)}:{os.minor(st.st_rdev)}"
            else:
                out[rel] = path.read_bytes().decode(errors="replace")
    return out


def ordinary_layer() -> bytes:
    return (
        Layer()
        .dir("etc")
        .file("etc/hostname", b"skiff\n")
        .dir("usr/bin")
        .file("usr/bin/tool", b"#!/bin/sh\n", mode=0o4755)
        .symlink("usr/bin/alias", "tool")
        .hardlink("usr/bin/hard", "usr/bin/tool")
        .dir("ro", mode=0o555)
        .file("ro/inside", b"read only", mode=0o444)
        .file("d" * 120 + "/" + "f" * 200, b"long")
        .tar()
    )


def test_round_trip_digests_and_content(tmp_path: Path) -> None:
    tar = ordinary_layer()
    blob = gz(tar)
    dest = tmp_path / "dest"
    stats = _native.unpack_layer(write(tmp_path, blob), dest)
    assert stats == {
        "digest": sha(blob),
        "compressed_size": len(blob),
        "diff_id": sha(tar),
        "size": len(tar),
        "entries": 9,
        "compression": "gzip",
    }
    assert (dest / "etc/hostname").read_bytes() == b"skiff\n"
    tool = (dest / "usr/bin/tool").stat()
    assert stat.S_IMODE(tool.st_mode) == 0o4755
    assert tool.st_mtime == MTIME
    assert (dest / "usr/bin/hard").stat().st_ino == tool.st_ino
    assert os.readlink(dest / "usr/bin/alias") == "tool"
    ro = (dest / "ro").stat()
    assert (stat.S_IMODE(ro.st_mode), ro.st_mtime) == (0o555, MTIME)
    assert (dest / ("d" * 120) / ("f" * 200)).read_bytes() == b"long"
    os.chmod(dest / "ro", 0o755)

    # Plain tar, by str path, and zstd (made by the zstd tool).
    plain = _native.unpack_layer(str(write(tmp_path, tar, "plain.tar")), tmp_path / "plain")
    assert (plain["compression"], plain["digest"], plain["diff_id"]) == ("none", sha(tar), sha(tar))
    os.chmod(tmp_path / "plain/ro", 0o755)
    if shutil.which("zstd"):
        zst = subprocess.run(
            ["zstd", "-q", "-c"], input=tar, capture_output=True, check=True
        ).stdout
        z = _native.unpack_layer(write(tmp_path, zst, "layer.zst"), tmp_path / "z")
        assert (z["compression"], z["digest"], z["diff_id"]) == ("zstd", sha(zst), sha(tar))
        assert tree(tmp_path / "z") == tree(dest)
        os.chmod(tmp_path / "z/ro", 0o755)


def test_expected_digests_checked(tmp_path: Path) -> None:
    tar = ordinary_layer()
    blob = gz(tar)
    src = write(tmp_path, blob)
    ok = _native.unpack_layer(
        src, tmp_path / "ok", expected_digest=sha(blob), expected_diff_id=sha(tar)
    )
    assert ok["digest"] == sha(blob)
    os.chmod(tmp_path / "ok/ro", 0o755)
    wrong = "sha256:" + "0" * 64
    for kwargs in ({"expected_digest": wrong}, {"expected_diff_id": wrong}):
        dest = tmp_path / "bad"
        with pytest.raises(DigestMismatch) as info:
            _native.unpack_layer(src, dest, **kwargs)  # type: ignore[arg-type]
        assert wrong in str(info.value)
        assert not dest.exists()
    with pytest.raises(InvalidArgument):
        _native.unpack_layer(src, tmp_path / "bad", expected_digest="md5:abc")
    assert not (tmp_path / "bad").exists()


def test_layers_flattened_with_whiteouts_applied(tmp_path: Path) -> None:
    lower = (
        Layer()
        .dir("etc")
        .file("etc/a", b"a")
        .file("gone", b"g")
        .dir("gonedir")
        .file("gonedir/x", b"x")
        .dir("opq")
        .file("opq/old", b"old")
        .dir("opq/sub")
        .file("opq/sub/old2", b"old2")
        .tar()
    )
    upper = (
        Layer()
        .file(".wh.gone")
        .file(".wh.gonedir")
        .dir("etc")
        .file("etc/b", b"b")
        .dir("opq")
        .dir("opq/sub")
        .file("opq/sub/new", b"new")
        .file("opq/.wh..wh..opq")
        .tar()
    )
    dest = tmp_path / "flat"
    for tar in (lower, upper):
        _native.unpack_layer(write(tmp_path, gz(tar)), dest, whiteouts="apply")
    assert tree(dest) == {
        "etc": "dir",
        "opq": "dir",
        "etc/a": "a",
        "etc/b": "b",
        "opq/sub": "dir",
        "opq/sub/new": "new",
    }


def test_overlay_whiteouts_are_char_devices(tmp_path: Path) -> None:
    # Opaque directories need trusted.* xattrs (root): see the integration tests.
    upper = Layer().file(".wh.gone").dir("etc").file("etc/.wh.passwd").file("etc/b", b"b").tar()
    dest = tmp_path / "snap"
    _native.unpack_layer(write(tmp_path, gz(upper)), dest, whiteouts="overlay")
    assert tree(dest) == {"gone": "chr 0:0", "etc": "dir", "etc/passwd": "chr 0:0", "etc/b": "b"}
    assert (dest / "gone").lstat().st_rdev == 0


def test_bad_whiteouts_value(tmp_path: Path) -> None:
    src = write(tmp_path, gz(ordinary_layer()))
    with pytest.raises(InvalidArgument, match="overlay"):
        _native.unpack_layer(src, tmp_path / "d", whiteouts="aufs")  # type: ignore[arg-type]
    assert not (tmp_path / "d").exists()


# ---- hostile layers -----------------------------------------------------------------


def _outside_rel(tmp: Path) -> str:
    return str(tmp / "outside").lstrip("/")


#: name -> (layer builder given the temp dir, the exception or None when it must
#: succeed, paths that must then exist under dest; "{outside}" is the sentinel's path
#: relative to "/")
HOSTILE: dict[str, tuple[Callable[[Path], bytes], type[Exception] | None, list[str]]] = {
    "dotdot": (lambda t: Layer().file("../outside", b"x").tar(), InvalidArgument, []),
    "dotdot-deep": (
        lambda t: Layer().file("a/../../outside", b"x").tar(),
        InvalidArgument,
        [],
    ),
    "absolute-is-stripped": (
        lambda t: Layer().file("/abs/ok", b"x").tar(),
        None,
        ["abs/ok"],
    ),
    "symlink-to-root": (
        lambda t: Layer().symlink("link", "/").file("link/" + _outside_rel(t), b"x").tar(),
        None,
        ["{outside}"],
    ),
    "symlink-up-and-out": (
        lambda t: (
            Layer()
            .dir("a")
            .symlink("a/link", "../" * 12)
            .file("a/link/x", b"x")
            .file("a/link/" + _outside_rel(t), b"x")
            .tar()
        ),
        None,
        ["x"],
    ),
    "symlink-to-missing-outside-dir": (
        lambda t: Layer().symlink("d", str(t)).file("d/outside", b"x").tar(),
        InvalidArgument,
        [],
    ),
    "hardlink-dotdot": (
        lambda t: Layer().hardlink("passwd", "../../etc/passwd").tar(),
        InvalidArgument,
        [],
    ),
    "hardlink-through-symlink": (
        lambda t: Layer().symlink("root", "/").hardlink("passwd", "root/etc/passwd").tar(),
        InvalidArgument,
        [],
    ),
    "hardlink-absolute-outside": (
        lambda t: Layer().hardlink("o", str(t / "outside")).tar(),
        InvalidArgument,
        [],
    ),
    "file-replaces-symlink": (
        lambda t: Layer().symlink("f", str(t / "outside")).file("f", b"inside").tar(),
        None,
        ["f"],
    ),
    "dir-replaces-symlink": (
        lambda t: Layer().symlink("d", str(t)).dir("d").file("d/outside", b"in").tar(),
        None,
        ["d/outside"],
    ),
    "long-component": (
        lambda t: Layer().file("x" * 256, b"x").tar(),
        InvalidArgument,
        [],
    ),
    "hardlink-to-missing": (
        lambda t: Layer().file("a", b"a").hardlink("b", "nowhere").tar(),
        InvalidArgument,
        [],
    ),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
@pytest.mark.parametrize("compressed", [False, True])
def test_hostile_layers(tmp_path: Path, case: str, compressed: bool) -> None:
    build, error, expected = HOSTILE[case]
    # The sentinel's real path must not be reachable by accident from "/" either.
    (tmp_path / "outside").mkdir(exist_ok=True)
    (tmp_path / "outside").rmdir()
    tar = build(tmp_path)
    blob = gz(tar) if compressed else tar
    src = write(tmp_path, blob)
    dest = tmp_path / "dest"
    if error is None:
        _native.unpack_layer(src, dest)
        for rel in expected:
            rel = rel.format(outside=_outside_rel(tmp_path))
            assert (dest / rel).exists(), rel
    else:
        with pytest.raises(error):
            _native.unpack_layer(src, dest)
        assert not dest.exists(), "dest must be removed on failure"
    assert not (tmp_path / "outside").exists(), "wrote outside dest"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["blob"] + (["dest"] if error is None else [])
    )


def test_refusal_names_the_member(tmp_path: Path) -> None:
    src = write(tmp_path, Layer().file("ok", b"").file("../evil", b"x").tar())
    with pytest.raises(InvalidArgument, match=r"\.\./evil"):
        _native.unpack_layer(src, tmp_path / "dest")


@pytest.mark.parametrize(
    "cut", ["half", "no-trailer", "inside-data", "garbage", "empty-gzip-member"]
)
def test_truncated_or_corrupt(tmp_path: Path, cut: str) -> None:
    tar = ordinary_layer()
    blob = gz(tar)
    broken = {
        "half": blob[: len(blob) // 2],
        "no-trailer": blob[:-4],
        "inside-data": tar[: 512 * 3 + 100],
        "garbage": os.urandom(10_000),
        "empty-gzip-member": gz(b"") + b"\x1f\x8bjunk",
    }[cut]
    dest = tmp_path / "dest"
    with pytest.raises(InvalidArgument, match="truncated or corrupt"):
        _native.unpack_layer(write(tmp_path, broken), dest)
    assert not dest.exists()


def test_existing_empty_dest_is_kept_and_emptied_on_failure(tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    dest.mkdir()
    blob = gz(ordinary_layer())
    with pytest.raises(DigestMismatch):
        _native.unpack_layer(write(tmp_path, blob), dest, expected_diff_id="sha256:" + "1" * 64)
    assert dest.is_dir()
    assert list(dest.iterdir()) == []


def test_missing_source_and_dest_parent(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        _native.unpack_layer(tmp_path / "nope", tmp_path / "dest")
    src = write(tmp_path, gz(ordinary_layer()))
    with pytest.raises(FileNotFoundError):
        _native.unpack_layer(src, tmp_path / "no/such/parent")


# ---- fd sources and the GIL ---------------------------------------------------------


def test_fd_source_from_a_pipe(tmp_path: Path) -> None:
    tar = ordinary_layer()
    blob = gz(tar)
    r, w = os.pipe()

    def feed() -> None:
        with os.fdopen(w, "wb") as f:
            for i in range(0, len(blob), 4093):
                f.write(blob[i : i + 4093])

    feeder = threading.Thread(target=feed)
    feeder.start()
    try:
        stats = _native.unpack_layer(r, tmp_path / "dest", expected_digest=sha(blob))
    finally:
        feeder.join()
    assert (stats["digest"], stats["diff_id"]) == (sha(blob), sha(tar))
    assert (tmp_path / "dest/etc/hostname").read_bytes() == b"skiff\n"
    with pytest.raises(OSError):
        os.fstat(r)  # taken over and closed
    os.chmod(tmp_path / "dest/ro", 0o755)


def test_fd_is_closed_even_when_arguments_are_wrong(tmp_path: Path) -> None:
    src = write(tmp_path, gz(ordinary_layer()))
    fd = os.open(src, os.O_RDONLY)
    with pytest.raises(TypeError):
        _native.unpack_layer(fd, tmp_path / "d", whiteouts=1)  # type: ignore[arg-type]
    with pytest.raises(OSError):
        os.fstat(fd)
    fd = os.open(src, os.O_RDONLY)
    with pytest.raises(DigestMismatch):
        _native.unpack_layer(fd, tmp_path / "d", expected_digest="sha256:" + "2" * 64)
    with pytest.raises(OSError):
        os.fstat(fd)
    with pytest.raises(InvalidArgument):
        _native.unpack_layer(-1, tmp_path / "d")


def test_unpack_releases_the_gil(tmp_path: Path) -> None:
    """While a ~200 MB layer unpacks natively, another thread keeps running Python."""
    chunk = os.urandom(1 << 20)
    blob = tmp_path / "big.tar"
    with blob.open("wb") as f:
        for i in range(4):
            f.write(_info(f"big{i}", size=50 << 20).tobuf(format=tarfile.PAX_FORMAT))
            for _ in range(50):
                f.write(chunk)
        f.write(bytes(1024))
    during, stats = ticks_during(lambda: _native.unpack_layer(blob, tmp_path / "dest"))
    assert stats["size"] == blob.stat().st_size
    assert (tmp_path / "dest/big3").stat().st_size == 50 << 20
    assert during > MIN_TICKS, f"the counter ran only {during} times during the unpack"
