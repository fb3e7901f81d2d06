"""unpack_layer as root: owners, setuid after chown, device nodes, file capabilities,
and overlay-mode whiteouts as a real overlayfs mount reads them."""

from __future__ import annotations

import gzip
import io
import os
import stat
import subprocess
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from skiff import _native
from tests.conftest import short_tmpdir

pytestmark = pytest.mark.root

# A v2 file capability (effective; cap_linux_immutable and cap_net_broadcast) whose
# bytes include 0x0a: a PAX record value may hold a newline.
CAP = bytes([0x01, 0, 0, 0x02, 0, 0x0A, 0, 0]) + bytes(12)


def _member(
    tar: tarfile.TarFile,
    name: str,
    kind: bytes = tarfile.REGTYPE,
    data: bytes = b"",
    **attrs: object,
) -> None:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mtime = 1_600_000_000
    info.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
    info.size = len(data)
    for key, value in attrs.items():
        setattr(info, key, value)
    tar.addfile(info, io.BytesIO(data) if data else None)


def _blob(tmp: Path, name: str, build: Callable[[tarfile.TarFile], None]) -> Path:
    buf = io.BytesIO()
    with tarfile.TarFile(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        build(tar)
    path = tmp / name
    path.write_bytes(gzip.compress(buf.getvalue(), mtime=0))
    return path


@pytest.fixture
def tmp() -> Iterator[Path]:
    path = short_tmpdir("skiff-unpack-")
    yield path
    for line in reversed(Path("/proc/self/mountinfo").read_text().splitlines()):
        point = line.split(" ")[4]
        if point.startswith(str(path)):
            subprocess.run(["umount", "-l", point], check=False)
    subprocess.run(["rm", "-rf", str(path)], check=False)


def test_owners_modes_devices_and_capabilities(tmp: Path) -> None:
    def build(tar: tarfile.TarFile) -> None:
        _member(tar, "dev", tarfile.DIRTYPE)
        _member(tar, "dev/null", tarfile.CHRTYPE, mode=0o666, devmajor=1, devminor=3)
        _member(tar, "dev/loop0", tarfile.BLKTYPE, mode=0o660, devmajor=7, devminor=0)
        _member(tar, "suid", data=b"bin", mode=0o4755, uid=1234, gid=5678)
        _member(
            tar,
            "ping",
            data=b"ping",
            mode=0o755,
            uid=1234,
            gid=5678,
            pax_headers={"SCHILY.xattr.security.capability": CAP.decode("ascii")},
        )
        _member(tar, "home", tarfile.DIRTYPE, mode=0o2750, uid=1234, gid=5678)
        _member(tar, "sym", tarfile.SYMTYPE, linkname="suid", uid=1234, gid=5678)
        _member(tar, "big-ids", data=b"", uid=100_000, gid=100_001)

    src = _blob(tmp, "layer.tgz", build)
    dest = tmp / "dest"
    _native.unpack_layer(src, dest)
    null = (dest / "dev/null").lstat()
    assert stat.S_ISCHR(null.st_mode) and null.st_rdev == os.makedev(1, 3)
    assert stat.S_IMODE(null.st_mode) == 0o666
    loop = (dest / "dev/loop0").lstat()
    assert stat.S_ISBLK(loop.st_mode) and loop.st_rdev == os.makedev(7, 0)
    suid = (dest / "suid").stat()
    assert (suid.st_uid, suid.st_gid, stat.S_IMODE(suid.st_mode)) == (1234, 5678, 0o4755)
    assert os.getxattr(dest / "ping", "security.capability") == CAP
    home = (dest / "home").stat()
    assert (home.st_uid, home.st_gid, stat.S_IMODE(home.st_mode)) == (1234, 5678, 0o2750)
    sym = (dest / "sym").lstat()
    assert (sym.st_uid, sym.st_gid) == (1234, 5678)
    big = (dest / "big-ids").stat()
    assert (big.st_uid, big.st_gid) == (100_000, 100_001)

    plain = tmp / "plain"
    _native.unpack_layer(src, plain, same_owner=False)
    assert (plain / "suid").stat().st_uid == 0


def test_overlay_snapshots_mount_as_the_image(tmp: Path) -> None:
    def lower(tar: tarfile.TarFile) -> None:
        _member(tar, "etc", tarfile.DIRTYPE)
        _member(tar, "etc/keep", data=b"keep")
        _member(tar, "etc/gone", data=b"gone")
        _member(tar, "opq", tarfile.DIRTYPE)
        _member(tar, "opq/old", data=b"old")
        _member(tar, "opq/sub", tarfile.DIRTYPE)
        _member(tar, "opq/sub/old2", data=b"old2")

    def upper(tar: tarfile.TarFile) -> None:
        _member(tar, "etc", tarfile.DIRTYPE)
        _member(tar, "etc/.wh.gone")
        _member(tar, "opq", tarfile.DIRTYPE)
        _member(tar, "opq/.wh..wh..opq")
        _member(tar, "opq/new", data=b"new")

    l1, l2 = tmp / "l1", tmp / "l2"
    _native.unpack_layer(_blob(tmp, "1.tgz", lower), l1, whiteouts="overlay")
    _native.unpack_layer(_blob(tmp, "2.tgz", upper), l2, whiteouts="overlay")
    assert (l2 / "etc/gone").lstat().st_rdev == 0
    assert stat.S_ISCHR((l2 / "etc/gone").lstat().st_mode)
    assert os.getxattr(l2 / "opq", "trusted.overlay.opaque") == b"y"
    assert not any(".wh." in name for _, dirs, files in os.walk(l2) for name in dirs + files)

    merged = tmp / "merged"
    merged.mkdir()
    subprocess.run(
        ["mount", "-t", "overlay", "overlay", "-o", f"ro,lowerdir={l2}:{l1}", str(merged)],
        check=True,
    )
    try:
        assert sorted(os.listdir(merged / "etc")) == ["keep"]
        assert sorted(os.listdir(merged / "opq")) == ["new"]
        assert (merged / "opq/new").read_bytes() == b"new"
    finally:
        subprocess.run(["umount", str(merged)], check=True)


def test_device_nodes_replace_and_whiteouts_apply_over_a_tree(tmp: Path) -> None:
    def first(tar: tarfile.TarFile) -> None:
        _member(tar, "dev", tarfile.DIRTYPE)
        _member(tar, "dev/null", data=b"not a device yet")
        _member(tar, "dev/zero", tarfile.CHRTYPE, devmajor=1, devminor=5)

    def second(tar: tarfile.TarFile) -> None:
        _member(tar, "dev/null", tarfile.CHRTYPE, mode=0o666, devmajor=1, devminor=3)
        _member(tar, "dev/.wh.zero")

    dest = tmp / "flat"
    _native.unpack_layer(_blob(tmp, "1.tgz", first), dest, whiteouts="apply")
    _native.unpack_layer(_blob(tmp, "2.tgz", second), dest, whiteouts="apply")
    assert sorted(os.listdir(dest / "dev")) == ["null"]
    assert (dest / "dev/null").lstat().st_rdev == os.makedev(1, 3)
