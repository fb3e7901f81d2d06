"""The overlay mounter's short links under concurrent starts."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from skiff.image.rootfs import RootfsMounter


def _at_once(mounter: RootfsMounter, layer: Path, n: int) -> tuple[list[Path], list[BaseException]]:
    """``short_link(layer)`` from ``n`` threads released together."""
    barrier = threading.Barrier(n)
    found: list[Path] = []
    errors: list[BaseException] = []

    def make() -> None:
        barrier.wait()
        try:
            found.append(mounter.short_link(layer))
        except BaseException as err:
            errors.append(err)

    threads = [threading.Thread(target=make) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return found, errors


def test_short_link_made_by_many_threads_at_once(tmp_path: Path) -> None:
    mounter = RootfsMounter(tmp_path / "data")
    for round_ in range(20):
        layer = tmp_path / f"layer-{round_}"
        layer.mkdir()
        found, errors = _at_once(mounter, layer, 8)
        assert not errors, errors
        assert len(set(found)) == 1
        assert os.readlink(found[0]) == str(layer)
    # Nothing half-made is left beside the links.
    assert all(not p.name.startswith(".") for p in (tmp_path / "data" / "l").iterdir())
