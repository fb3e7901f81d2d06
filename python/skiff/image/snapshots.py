"""Snapshots: one unpacked layer each, keyed by chain ID and shared by every image and
container with that chain.

On disk (under the data root)::

    snapshots/<chain id hex>/      a committed snapshot (its ``fs`` is an overlay lower)
    snapshots/<chain id hex>/fs
    snapshots/.staging/<random>/   a layer being unpacked; swept at start

A layer is recorded incomplete in the metadata before its snapshot is moved into
place and completed after, so a crash at any point leaves either nothing or an
incomplete record that :meth:`SnapshotStore.recover` removes (containers/storage's
scheme). Layers of one image unpack in parallel into staging (the native unpack
releases the GIL) and are committed in order, each on its parent.

The staging dir is marked as the top of unrelated directory trees (``chattr +T``):
ext4's Orlov allocator then puts each new snapshot in a lightly used block group, as
it does for directories in ``/``, instead of next to the ones before it. On ext4
without a journal this matters: a group where many inodes were freed in the last
minutes makes every file created in it scan past them (``recently_deleted``), several
times slower, and removed snapshots and containers leave exactly such groups behind.
"""

from __future__ import annotations

import array
import fcntl
import functools
import os
import shutil
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from skiff import _native
from skiff.errors import Conflict, DigestMismatch
from skiff.image.content import digest_hex
from skiff.image.manifest import chain_ids
from skiff.image.metadata import ImageMetadata

STAGING = ".staging"
#: ioctls and the flag of ``chattr +T`` (linux/fs.h); the kernel reads an int.
_FS_IOC_GETFLAGS = 0x80086601
_FS_IOC_SETFLAGS = 0x40086602
_FS_TOPDIR_FL = 0x00020000
#: How long a commit waits for another operation committing the same layer.
COMMIT_WAIT = 120.0


@dataclass(frozen=True)
class LayerSource:
    """A layer blob to unpack: where it is, its digest, and the diff ID the image
    config says it has (checked while unpacking)."""

    path: Path
    digest: str
    diff_id: str


def mark_topdir(path: Path) -> bool:
    """Sets the ``T`` attribute on directory ``path`` (see the module documentation);
    whether it is set. Best effort: file systems without it are left as they are."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        flags = array.array("i", [0])
        fcntl.ioctl(fd, _FS_IOC_GETFLAGS, flags, True)
        if not flags[0] & _FS_TOPDIR_FL:
            flags[0] |= _FS_TOPDIR_FL
            fcntl.ioctl(fd, _FS_IOC_SETFLAGS, flags, True)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


#: Chains whose lower dirs are kept as text (the least used go first).
LOWER_PATHS_KEPT = 64


class SnapshotStore:
    def __init__(self, data_root: Path, meta: ImageMetadata) -> None:
        self.root = data_root / "snapshots"
        self.meta = meta
        self.staging = self.root / STAGING
        self._staging_marked = False
        #: :meth:`lowers` as text, kept for the chains used last (each create)
        self.lower_paths = functools.lru_cache(maxsize=LOWER_PATHS_KEPT)(self._lower_paths)

    def make_staging(self) -> Path:
        """A new empty directory in staging (which is made and marked when needed)."""
        try:
            self.staging.mkdir(parents=True)
            made = True
        except FileExistsError:
            made = False
        if made or not self._staging_marked:
            mark_topdir(self.staging)
            self._staging_marked = True
        return Path(tempfile.mkdtemp(dir=self.staging))

    def dir(self, chain_id: str) -> Path:
        return self.root / digest_hex(chain_id)

    def fs(self, chain_id: str) -> Path:
        """The directory an overlay uses as this snapshot's lower layer."""
        return self.dir(chain_id) / "fs"

    def lowers(self, chain: Sequence[str]) -> list[Path]:
        """Lower dirs for an overlay of ``chain`` (base first), top first."""
        return [self.fs(c) for c in reversed(chain)]

    def _lower_paths(self, chain: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(str(p) for p in self.lowers(chain))

    def recover(self) -> int:
        """At start: remove staging leftovers and incomplete layers; returns how many."""
        removed = 0
        if self.staging.exists():
            for entry in self.staging.iterdir():
                shutil.rmtree(entry, ignore_errors=True)
                removed += 1
        for layer in self.meta.incomplete_layers():
            shutil.rmtree(self.root / layer.snapshot, ignore_errors=True)
            self.meta.forget_layer(layer.chain_id)
            removed += 1
        return removed

    def _unpack(self, src: LayerSource) -> tuple[Path, dict[str, Any]]:
        work = self.make_staging()
        fs = work / "fs"
        try:
            stats = _native.unpack_layer(
                src.path, fs, expected_digest=src.digest, expected_diff_id=src.diff_id
            )
        except BaseException:
            shutil.rmtree(work, ignore_errors=True)
            raise
        return work, dict(stats)

    def ensure(self, layers: Sequence[LayerSource], lease: str | None = None) -> list[str]:
        """Makes sure a snapshot exists for every prefix of ``layers`` (base first);
        returns their chain IDs. Missing ones unpack in parallel and commit in order.
        Under ``lease`` every layer is held against garbage collection until the
        caller's image references it."""
        chain = chain_ids([layer.diff_id for layer in layers])
        if lease is not None:
            for cid in chain:
                self.meta.lease_add(lease, "layer", cid)
        todo = [i for i, cid in enumerate(chain) if self._missing(cid)]
        if not todo:
            return chain
        # All layers at once (up to 8): an unpack waits on the disk as much as it
        # computes (a layer of many small files is mostly file creation), so more
        # workers than cores keep both busy; commits still go in order.
        workers = min(len(todo), 8)
        futures = {}
        try:
            with ThreadPoolExecutor(max_workers=workers) as pool:
                futures = {i: pool.submit(self._unpack, layers[i]) for i in todo}
                for i in todo:
                    work, stats = futures[i].result()
                    if stats["diff_id"] != layers[i].diff_id:
                        raise DigestMismatch(
                            f"layer {layers[i].digest}: diff ID {stats['diff_id']},"
                            f" the image config says {layers[i].diff_id}"
                        )
                    parent = chain[i - 1] if i else None
                    self.add_prepared(parent, layers[i].diff_id, work, int(stats["size"]), lease)
        finally:
            # Staged layers that were not committed (a later one failed) go; committed
            # ones were renamed away.
            for fut in futures.values():
                if fut.done() and not fut.cancelled() and fut.exception() is None:
                    shutil.rmtree(fut.result()[0], ignore_errors=True)
        return chain

    def _missing(self, chain_id: str) -> bool:
        layer = self.meta.find_layer(chain_id)
        return layer is None or layer.incomplete

    def add_prepared(
        self, parent: str | None, diff_id: str, work: Path, size: int, lease: str | None = None
    ) -> str:
        """Commits a snapshot unpacked in ``work/fs`` (a staging dir) as the layer
        ``diff_id`` on ``parent``; returns its chain ID. If another operation committed
        the same layer first, ``work`` is dropped."""
        from skiff.image.manifest import chain_id

        cid = chain_id(parent, diff_id)
        if lease is not None:
            self.meta.lease_add(lease, "layer", cid)
        # Another operation may be committing the same layer right now (two pulls of
        # one image): wait for it, then use its snapshot.
        deadline = time.monotonic() + COMMIT_WAIT
        while True:
            existing = self.meta.find_layer(cid)
            if existing is not None and not existing.incomplete:
                shutil.rmtree(work, ignore_errors=True)
                return cid
            if existing is None:
                try:
                    self.meta.add_layer(cid, diff_id, parent, size=size)
                    break
                except Conflict:
                    pass  # it got there between our look and our write
            if time.monotonic() > deadline:
                shutil.rmtree(work, ignore_errors=True)
                raise Conflict(f"layer {cid} is still being written by another operation")
            time.sleep(0.01)
        target = self.dir(cid)
        shutil.rmtree(target, ignore_errors=True)
        os.rename(work, target)
        self.meta.complete_layer(cid, size=size)
        return cid

    def remove(self, chain_id: str) -> None:
        """Removes an unused snapshot (Conflict while an image or layer uses it)."""
        layer = self.meta.remove_layer(chain_id)
        shutil.rmtree(self.root / layer.snapshot, ignore_errors=True)
        self.meta.forget_layer(chain_id)


def new_staging(store: SnapshotStore) -> Path:
    return store.make_staging()
