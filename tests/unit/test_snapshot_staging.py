"""Snapshot staging: the staging dir carries ext4's ``T`` attribute (Orlov spreads
new snapshots over lightly used block groups), where the file system has it."""

from __future__ import annotations

import array
import fcntl
import os
from pathlib import Path

import pytest

from skiff.image.metadata import ImageMetadata
from skiff.image.snapshots import SnapshotStore, mark_topdir, new_staging
from skiff.store.db import Database

FS_IOC_GETFLAGS = 0x80086601
FS_TOPDIR_FL = 0x00020000


def flags(path: Path) -> int:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        buf = array.array("i", [0])
        fcntl.ioctl(fd, FS_IOC_GETFLAGS, buf, True)
        return buf[0]
    finally:
        os.close(fd)


def test_mark_topdir_sets_the_flag_or_reports_it_cannot(tmp_path: Path) -> None:
    d = tmp_path / "d"
    d.mkdir()
    if not mark_topdir(d):
        pytest.skip("this file system has no T attribute")
    assert flags(d) & FS_TOPDIR_FL
    assert mark_topdir(d)  # already set: still fine
    assert not mark_topdir(tmp_path / "missing")
    assert not mark_topdir(Path("/proc/self"))  # no such attribute on procfs


def test_staging_is_marked_and_remade_when_gone(tmp_path: Path) -> None:
    probe = tmp_path / "probe"
    probe.mkdir()
    supported = mark_topdir(probe)
    meta = ImageMetadata(Database(tmp_path / "db.sqlite"))
    store = SnapshotStore(tmp_path / "root", meta)
    work = new_staging(store)
    assert work.parent == store.staging and work.is_dir()
    if supported:
        assert flags(store.staging) & FS_TOPDIR_FL
    # Staging removed under a live store (a sweep): the next one makes it again.
    os.rmdir(work)
    os.rmdir(store.staging)
    assert new_staging(store).is_dir()
    if supported:
        assert flags(store.staging) & FS_TOPDIR_FL


def test_lower_paths_are_the_lower_dirs_as_text_and_kept(tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path / "root", ImageMetadata(Database(tmp_path / "db.sqlite")))
    chain = ("sha256:" + "a" * 64, "sha256:" + "b" * 64)
    paths = store.lower_paths(chain)
    assert paths == tuple(str(p) for p in store.lowers(chain))
    assert paths[0].endswith("b" * 64 + "/fs")  # top first
    assert store.lower_paths(chain) is paths
