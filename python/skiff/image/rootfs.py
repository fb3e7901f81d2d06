"""Container root filesystems: an overlay of the image's snapshots (read-only lower
layers, top first) under the container's own upper and work dirs.

On disk (under the data root)::

    l/<16 chars>  ->  snapshots/<chain id hex>/fs     short links, so that the
                                                      lowerdir list of a deep image
                                                      fits in the one page the
                                                      kernel accepts (as
                                                      containers/storage does)

A short link's name is derived from the snapshot's directory name, so it is stable
and needs no bookkeeping; a missing one is (re)made on use.
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
from collections.abc import Sequence
from pathlib import Path

from skiff import _native

LINK_DIR = "l"


def short_name(target: Path) -> str:
    """16 characters of base32 of the target's path hash: stable and short."""
    digest = hashlib.sha256(str(target).encode()).digest()
    return base64.b32encode(digest).decode()[:16]


class RootfsMounter:
    def __init__(self, data_root: Path) -> None:
        self.links = data_root / LINK_DIR

    def short_link(self, layer_dir: Path) -> Path:
        """A short absolute path that resolves to ``layer_dir``."""
        link = self.links / short_name(layer_dir)
        try:
            if os.readlink(link) == str(layer_dir):
                return link
            link.unlink()
        except FileNotFoundError:
            pass
        self.links.mkdir(parents=True, exist_ok=True, mode=0o700)
        # A name of this call's own: starts on several threads may make the same
        # link at once (each then renames an identical link into place).
        tmp = link.with_name(f".{link.name}.{os.getpid()}.{secrets.token_hex(6)}")
        tmp.symlink_to(layer_dir)
        os.replace(tmp, link)
        return link

    def mount(
        self,
        lowers: Sequence[Path],
        target: Path,
        *,
        upper: Path | None = None,
        work: Path | None = None,
        volatile: bool = False,
        made: bool = False,
    ) -> None:
        """Mounts the overlay at ``target``; ``lowers`` top first. A read-only view
        of a single layer is a read-only bind mount instead (overlay needs two).

        ``volatile`` (for a writable layer that is thrown away with its container,
        as podman does for ``--rm``): overlay skips syncing the upper filesystem,
        so unmounting does not wait for a sync of the whole data disk. The kernel
        marks such a work dir and refuses to mount it again; that mark is removed
        before every mount, so a remount (a restart, a copy into the stopped
        container) still works.

        ``made``: ``target``, ``upper`` and ``work`` exist (a container's, made with
        it); else they are made when missing."""
        if not made:
            target.mkdir(parents=True, exist_ok=True)
        if upper is None and len(lowers) == 1:
            _native.bind_mount(lowers[0], target, readonly=True)
            return
        for d in (upper, work):
            if d is not None and not made:
                d.mkdir(parents=True, exist_ok=True)
        short = [str(self.short_link(layer)) for layer in lowers]
        options = []
        if upper is not None and work is not None:
            # Left by an earlier volatile mount of this layer (any mount refuses it).
            _native.remove_tree(work / "work" / "incompat" / "volatile")
            if volatile:
                options.append("volatile")
        _native.mount_overlay(short, target, upper=upper, work=work, options=options)

    @staticmethod
    def unmount(target: Path, *, detach: bool = False) -> None:
        _native.unmount(target, detach=detach)
