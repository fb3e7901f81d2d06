"""Container root filesystems on overlayfs: image layers under a container's upper."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from skiff.errors import InvalidArgument
from skiff.image.rootfs import RootfsMounter, short_name
from tests.conftest import short_tmpdir

pytestmark = pytest.mark.root


@pytest.fixture
def root() -> Iterator[Path]:
    path = short_tmpdir("skiff-rootfs-")
    yield path
    for line in reversed(Path("/proc/self/mountinfo").read_text().splitlines()):
        point = line.split(" ")[4]
        if point.startswith(str(path)):
            os.system(f"umount -l {point}")
    shutil.rmtree(path, ignore_errors=True)


def _layers(root: Path, n: int) -> list[Path]:
    layers = []
    for i in range(n):
        d = root / "snapshots" / f"{i:064x}" / "fs"
        d.mkdir(parents=True)
        (d / f"layer{i}.txt").write_text(f"{i}\n")
        (d / "shared.txt").write_text(f"from layer {i}\n")
        layers.append(d)
    return layers


def test_overlay_of_layers_under_an_upper(root: Path) -> None:
    layers = _layers(root, 3)
    lowers = list(reversed(layers))  # top first
    merged, upper, work = root / "merged", root / "upper", root / "work"
    mounter = RootfsMounter(root)
    mounter.mount(lowers, merged, upper=upper, work=work)
    try:
        assert (merged / "shared.txt").read_text() == "from layer 2\n"
        assert sorted(p.name for p in merged.iterdir()) == [
            "layer0.txt",
            "layer1.txt",
            "layer2.txt",
            "shared.txt",
        ]
        (merged / "new.txt").write_text("new\n")
        (merged / "layer0.txt").unlink()
        assert (upper / "new.txt").read_text() == "new\n"
        st = os.lstat(upper / "layer0.txt")  # a whiteout: 0/0 character device
        assert (st.st_mode & 0o170000) == 0o020000 and st.st_rdev == 0
        assert (layers[0] / "layer0.txt").exists()  # lower layers never change
        # the short links name the layers
        for layer in lowers:
            assert os.readlink(root / "l" / short_name(layer)) == str(layer)
    finally:
        mounter.unmount(merged)
    assert not any(merged.iterdir())


def test_deep_images_fit_in_a_page(root: Path) -> None:
    layers = _layers(root, 120)
    merged = root / "merged"
    mounter = RootfsMounter(root)
    mounter.mount(list(reversed(layers)), merged, upper=root / "upper", work=root / "work")
    try:
        assert (merged / "shared.txt").read_text() == "from layer 119\n"
        assert (merged / "layer0.txt").exists()
    finally:
        mounter.unmount(merged)


def test_read_only_views(root: Path) -> None:
    one = _layers(root, 1)
    view = root / "view"
    mounter = RootfsMounter(root)
    mounter.mount(one, view)
    try:
        assert (view / "layer0.txt").read_text() == "0\n"
        with pytest.raises(OSError):
            (view / "x").write_text("no")
    finally:
        mounter.unmount(view)


def test_bad_paths_are_refused(root: Path) -> None:
    bad = root / "a:b"
    bad.mkdir()
    with pytest.raises(InvalidArgument):
        from skiff import _native

        _native.mount_overlay([bad, bad], root / "m")
