"""The top-directory flag on the parents of per-container directories (dirspread)."""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from skiff.dirspread import _FLAGS, FS_IOC_GETFLAGS, FS_TOPDIR_FL, spread_children


def fs_type(path: Path) -> str:
    return subprocess.run(
        ["stat", "-f", "-c", "%T", str(path)], capture_output=True, text=True, check=True
    ).stdout.strip()


def flags(path: Path) -> int:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        return int(_FLAGS.unpack(fcntl.ioctl(fd, FS_IOC_GETFLAGS, _FLAGS.pack(0)))[0])
    finally:
        os.close(fd)


def lsattr(path: Path) -> str:
    out = subprocess.run(["lsattr", "-d", str(path)], capture_output=True, text=True, check=True)
    return out.stdout.split()[0]


@pytest.mark.skipif(shutil.which("lsattr") is None, reason="lsattr (e2fsprogs) not installed")
def test_a_directory_on_ext4_gets_the_top_flag_and_keeps_its_others(tmp_path: Path) -> None:
    if fs_type(tmp_path) not in ("ext2/ext3", "ext4"):
        pytest.skip(f"{tmp_path} is not on ext4")
    d = tmp_path / "containers"
    d.mkdir()
    subprocess.run(["chattr", "+d", str(d)], check=True)  # "no dump": one to keep
    assert "T" not in lsattr(d)
    assert spread_children(d)
    assert "T" in lsattr(d) and "d" in lsattr(d)
    before = flags(d)
    assert before & FS_TOPDIR_FL
    assert spread_children(d)  # again: nothing changes
    assert flags(d) == before


def test_a_filesystem_without_the_flag_is_left_alone(tmp_path: Path) -> None:
    mnt = tmp_path / "tmpfs"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)], check=True)
    try:
        assert not spread_children(mnt)
        (mnt / "c").mkdir()  # still usable
    finally:
        subprocess.run(["umount", str(mnt)], check=True)


def test_a_missing_directory_is_no_error(tmp_path: Path) -> None:
    # A placement hint never stops the daemon.
    assert not spread_children(tmp_path / "nope")
