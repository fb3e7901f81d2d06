"""Container.rootfs_mounted: whether something is mounted on a container's root,
told with two lstats (no walk of the parent's real path), as os.path.ismount
tells it."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from skiff.engine.container import Container

pytestmark = pytest.mark.root


def _container(root: Path) -> Container:
    return Container(
        id="c" * 64,
        name="root",
        created="",
        image_id="",
        config={},
        host_config={},
        path="true",
        args=[],
        root=root,
    )


def test_a_mount_on_the_root_is_seen_as_ismount_sees_it(tmp_path: Path) -> None:
    c = _container(tmp_path / "c")
    assert not c.rootfs_mounted()  # no directory at all
    c.rootfs.mkdir(parents=True)
    assert not c.rootfs_mounted() and not os.path.ismount(c.rootfs)
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(c.rootfs)], check=True)
    try:
        assert c.rootfs_mounted() and os.path.ismount(c.rootfs)
    finally:
        subprocess.run(["umount", str(c.rootfs)], check=True)
    assert not c.rootfs_mounted()
    # A link in its place (to a mount point) is not a mount on the root.
    c.rootfs.rmdir()
    c.rootfs.symlink_to("/proc")
    assert not c.rootfs_mounted() and not os.path.ismount(c.rootfs)
