"""Commit: a container's changes (its overlay upper dir) become a new layer and a new
image on top of the container's image, with config changes applied — ``docker
commit``.

The layer is written once by the native diff (tar, gzip and both digests in one
pass), stored as a blob, and unpacked into a snapshot of its own so that new
containers of the committed image share it like any pulled layer.
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

from skiff import _native
from skiff.image import manifest as mf
from skiff.image.metadata import ImageRecord
from skiff.image.platform import host_platform
from skiff.image.service import ImageService
from skiff.image.snapshots import new_staging
from skiff.timefmt import rfc3339_nano


def commit(
    svc: ImageService,
    upper: Path,
    base: str | None,
    *,
    tag: str | None = None,
    config: mf.ContainerConfig | None = None,
    comment: str = "",
    author: str = "",
    created_by: str = "",
    level: int | None = None,
) -> ImageRecord:
    """Commits ``upper`` on top of the image ``base`` (None: from scratch)."""
    base_img = svc.get(base) if base is not None else None
    with svc.meta.lease() as lease:
        work = new_staging(svc.snapshots)
        try:
            blob_tmp = work / "layer.tar.gz"
            stats = _native.diff_upper(upper, blob_tmp, compression="gzip", level=level)
            digest = svc.content.import_file(blob_tmp, expected=str(stats["digest"]), move=True)
            svc.meta.lease_add(lease, "blob", digest)
            diff_id = str(stats["diff_id"])
            size = int(stats["size"])
            svc.meta.add_blob(digest, size, mf.OCI_LAYER_GZIP)
            svc.meta.add_layer_blob(digest, diff_id, mf.OCI_LAYER_GZIP, size)
            unpacked = _native.unpack_layer(
                svc.content.path(digest), work / "fs", expected_digest=digest
            )
        except BaseException:
            shutil.rmtree(work, ignore_errors=True)
            raise
        parent_chain = list(base_img.record.chain) if base_img else []
        chain_id = svc.snapshots.add_prepared(
            parent_chain[-1] if parent_chain else None, diff_id, work, int(unpacked["size"]), lease
        )
        created = rfc3339_nano()
        if base_img is not None:
            cfg = base_img.config
            layers = list(svc.manifest_of(base_img.record.id).layers)
        else:
            plat = host_platform()
            cfg = mf.ImageConfig(architecture=plat.architecture, os=plat.os, variant=plat.variant)
            layers = []
        history = [
            *cfg.history,
            mf.History(created=created, created_by=created_by, comment=comment, author=author),
        ]
        new_cfg = dataclasses.replace(
            cfg,
            diff_ids=[*cfg.diff_ids, diff_id],
            created=created,
            author=author or cfg.author,
            config=config if config is not None else cfg.config,
            history=history,
        )
        layers.append(mf.Descriptor(mf.OCI_LAYER_GZIP, digest, size))
        return svc.register(
            new_cfg,
            layers,
            [*parent_chain, chain_id],
            tag=tag,
            parent=base_img.record.id if base_img else None,
        )
