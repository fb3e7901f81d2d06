"""Image operations over the store: import, inspect, list, tag, remove, history.
(Save and load live in ``archive``, commit in ``commit``.) The daemon's image routes
and the CLI call these; their output shapes are the Engine API's.

The store's parts, all under the data root: ``skiff.db`` (metadata), ``content/``
(blobs), ``snapshots/`` (unpacked layers), ``l/`` (short links for overlays).
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from skiff import _native
from skiff.errors import Conflict, NotFound
from skiff.image import manifest as mf
from skiff.image.content import ContentStore, digest_bytes
from skiff.image.metadata import ImageMetadata, ImageRecord
from skiff.image.platform import host_platform
from skiff.image.reference import parse_normalized
from skiff.image.snapshots import LayerSource, SnapshotStore
from skiff.store.db import Database
from skiff.timefmt import parse_rfc3339, rfc3339_nano

#: Images whose parsed container defaults are kept (the least used go first).
DEFAULTS_CACHED = 64


@functools.lru_cache(maxsize=DEFAULTS_CACHED)
def _defaults_of(config: bytes) -> mf.ContainerConfig:
    """The container defaults of an image config (the bytes an image ID is the
    digest of: one entry per image)."""
    return mf.ImageConfig.from_json(config).config


@dataclass
class StoredImage:
    """An image as stored: its record, parsed config and (our) manifest."""

    record: ImageRecord
    config: mf.ImageConfig


class ImageService:
    def __init__(self, data_root: Path) -> None:
        self.root = data_root
        data_root.mkdir(parents=True, exist_ok=True, mode=0o711)
        self.db = Database.open(data_root)
        self.meta = ImageMetadata(self.db)
        self.content = ContentStore(data_root)
        self.snapshots = SnapshotStore(data_root, self.meta)
        #: the image a name named, kept per name and metadata generation (each create
        #: reads it; an image ID is its config's digest: the record cannot change)
        self._records = functools.lru_cache(maxsize=DEFAULTS_CACHED)(self._read_record)
        self._gc_lock = threading.Lock()  # one garbage collection at a time

    def close(self) -> None:
        self.db.close()

    def recover(self) -> None:
        """At start: sweep partial ingests, staging dirs and incomplete layers."""
        self.content.sweep()
        self.snapshots.recover()

    # ------------------------------------------------------------------ writing

    def store_json_blob(
        self, data: bytes, media_type: str, children: tuple[str, ...] = ()
    ) -> mf.Descriptor:
        digest = self.content.write_blob(data)
        self.meta.add_blob(digest, len(data), media_type, children)
        return mf.Descriptor(media_type, digest, len(data))

    def register(
        self,
        config: mf.ImageConfig,
        layer_blobs: list[mf.Descriptor],
        chain: list[str],
        *,
        tag: str | None = None,
        parent: str | None = None,
    ) -> ImageRecord:
        """Stores the config of an image whose ``layer_blobs`` are in the content store
        and whose snapshots are committed as ``chain``, and records the image. The
        config blob keeps its layer blobs alive (a reference edge for the GC), so a
        manifest can be made again at any time (:meth:`manifest_of`)."""
        config_bytes = config.to_bytes()
        self.store_json_blob(config_bytes, mf.OCI_CONFIG, tuple(d.digest for d in layer_blobs))
        digest = digest_bytes(config_bytes)
        record = self.meta.add_image(digest, config_bytes, chain, parent=parent)
        if tag:
            self.meta.tag(parse_normalized(tag), record.id)
        return record

    def import_tar(
        self,
        path: Path,
        *,
        tag: str | None = None,
        container_config: mf.ContainerConfig | None = None,
        message: str = "",
    ) -> ImageRecord:
        """``docker import``: a root filesystem tar (plain, gzip or zstd) as a one-layer
        image. The blob is kept as given; its digests are checked while unpacking."""
        with self.meta.lease() as lease:
            digest = self.content.import_file(path)
            self.meta.lease_add(lease, "blob", digest)
            blob = self.content.path(digest)
            # The diff ID is only known once unpacked: unpack into staging first.
            from skiff.image.snapshots import new_staging

            work = new_staging(self.snapshots)
            try:
                stats = _native.unpack_layer(blob, work / "fs", expected_digest=digest)
            except BaseException:
                import shutil

                shutil.rmtree(work, ignore_errors=True)
                raise
            diff_id = str(stats["diff_id"])
            media_type = mf.layer_media_type(str(stats["compression"]))
            self.meta.add_blob(digest, int(stats["compressed_size"]), media_type)
            self.meta.add_layer_blob(digest, diff_id, media_type, int(stats["compressed_size"]))
            chain_id = self.snapshots.add_prepared(None, diff_id, work, int(stats["size"]), lease)
            plat = host_platform()
            created = rfc3339_nano()
            config = mf.ImageConfig(
                architecture=plat.architecture,
                os=plat.os,
                variant=plat.variant,
                diff_ids=[diff_id],
                created=created,
                config=container_config or mf.ContainerConfig(),
                history=[
                    mf.History(
                        created=created,
                        created_by="skiff import",
                        comment=message or "Imported from tarball",
                    )
                ],
            )
            layer = mf.Descriptor(media_type, digest, int(stats["compressed_size"]))
            return self.register(config, [layer], [chain_id], tag=tag)

    def pull_layers(self, layers: list[LayerSource], lease: str | None = None) -> list[str]:
        """Snapshots for layers already in the content store (load, pull)."""
        return self.snapshots.ensure(layers, lease)

    # ------------------------------------------------------------------ reading

    def get(self, name: str) -> StoredImage:
        record = self._record(name)
        return StoredImage(record, mf.ImageConfig.from_json(record.config))

    def container_defaults(self, name: str) -> tuple[ImageRecord, mf.ContainerConfig]:
        """The record of the image ``name`` names and its defaults for containers
        (its config's ``config``), parsed once per image (for each create): shared
        between callers, which must not change it."""
        record = self._record(name)
        return record, _defaults_of(record.config)

    def _record(self, name: str) -> ImageRecord:
        return self._records(name, self.meta.generation)

    def _read_record(self, name: str, generation: int) -> ImageRecord:
        # resolve gives a whole ID (no prefix to look up again, as get_image would).
        record = self.meta.find_image(self.meta.resolve(name))
        if record is None:  # deleted in between
            raise NotFound(f"No such image: {name}")
        return record

    def manifest_of(self, image_id: str) -> mf.Manifest:
        """An OCI manifest of a stored image: its config and, per diff ID, the
        compressed blob the store holds for it."""
        rec = self.meta.get_image(image_id)
        config = mf.ImageConfig.from_json(rec.config)
        layers = []
        for diff_id in config.diff_ids:
            blobs = [
                b for b in self.meta.blobs_of_diff_id(diff_id) if self.content.exists(b.blob_digest)
            ]
            if not blobs:
                raise NotFound(f"no layer blob for {diff_id} of image {image_id}")
            layers.append(mf.Descriptor(blobs[0].media_type, blobs[0].blob_digest, blobs[0].size))
        cfg = mf.Descriptor(mf.OCI_CONFIG, rec.id, len(rec.config))
        return mf.Manifest(mf.OCI_MANIFEST, cfg, tuple(layers))

    def inspect(self, name: str) -> dict[str, Any]:
        """``GET /images/{name}/json``."""
        img = self.get(name)
        rec, cfg = img.record, img.config
        repo_digests = [d for d in self.meta.digests_of(rec.id) if not d.startswith("@")]
        return {
            "Id": rec.id,
            "RepoTags": [parse_normalized(t).familiar() for t in self.meta.tags_of(rec.id)],
            "RepoDigests": repo_digests,
            "Parent": rec.parent or "",
            "Comment": cfg.history[-1].comment if cfg.history else "",
            "Created": cfg.created,
            "DockerVersion": "",
            "Author": cfg.author,
            "Config": cfg.config.to_json(),
            "Architecture": cfg.architecture,
            "Variant": cfg.variant or None,
            "Os": cfg.os,
            "Size": rec.size,
            "GraphDriver": {
                "Name": "overlay2",
                "Data": {"LowerDir": ":".join(str(p) for p in self.snapshots.lowers(rec.chain))},
            },
            "RootFS": {"Type": "layers", "Layers": list(cfg.diff_ids)},
            "Metadata": {"LastTagTime": ""},
        }

    def images(self) -> list[dict[str, Any]]:
        """``GET /images/json`` (without filters)."""
        out = []
        for rec in self.meta.list_images():
            cfg = mf.ImageConfig.from_json(rec.config)
            tags = [parse_normalized(t).familiar() for t in self.meta.tags_of(rec.id)]
            out.append(
                {
                    "Id": rec.id,
                    "ParentId": rec.parent or "",
                    "RepoTags": tags,
                    "RepoDigests": [
                        d for d in self.meta.digests_of(rec.id) if not d.startswith("@")
                    ],
                    "Created": int(parse_rfc3339(cfg.created, 0.0)),
                    "Size": rec.size,
                    "SharedSize": -1,
                    "Labels": dict(cfg.config.labels or {}),
                    "Containers": -1,
                }
            )
        return out

    def history(self, name: str) -> list[dict[str, Any]]:
        """``GET /images/{name}/history``: newest first, like docker."""
        img = self.get(name)
        out = []
        layer_sizes = [self.meta.get_layer(c).size for c in img.record.chain]
        sizes = iter(layer_sizes)
        for h in img.config.history:
            size = 0 if h.empty_layer else next(sizes, 0)
            out.append(
                {
                    "Id": "<missing>",
                    "Created": int(parse_rfc3339(h.created, 0.0)),
                    "CreatedBy": h.created_by,
                    "Tags": None,
                    "Size": size,
                    "Comment": h.comment,
                }
            )
        out.reverse()
        if out:
            out[0]["Id"] = img.record.id
            out[0]["Tags"] = [
                parse_normalized(t).familiar() for t in self.meta.tags_of(img.record.id)
            ]
        return out

    # ------------------------------------------------------------------ changing

    def tag(self, source: str, target: str) -> None:
        image_id = self.meta.resolve(source)
        self.meta.tag(parse_normalized(target), image_id)

    def remove(
        self, name: str, *, force: bool = False, in_use: bool = False
    ) -> list[dict[str, str]]:
        """``DELETE /images/{name}``: untag a reference; delete the image when no tag
        is left (or by ID, with ``force`` when it still has several tags). ``in_use``
        (a container uses it) refuses unless forced, as Docker does."""
        image_id = self.meta.resolve(name)
        tags = self.meta.tags_of(image_id)
        by_ref = not name.startswith("sha256:") and not _is_id_prefix(name, image_id)
        results: list[dict[str, str]] = []
        if by_ref and len(tags) > 1:
            ref = parse_normalized(name)
            self.meta.untag(ref)
            return [{"Untagged": ref.familiar()}]
        # From here on the image itself goes: check first, change nothing on refusal.
        if not by_ref and len(tags) > 1 and not force:
            raise Conflict(
                f"conflict: unable to delete {image_id[7:19]} (must be forced) - image is "
                "referenced in multiple repositories"
            )
        if in_use and not force:
            raise Conflict(
                f"conflict: unable to delete {image_id[7:19]} (must be forced) - image is "
                "being used by a container"
            )
        for t in self.meta.tags_of(image_id):
            self.meta.untag(parse_normalized(t))
            results.append({"Untagged": parse_normalized(t).familiar()})
        self.meta.delete_image(image_id)
        results.append({"Deleted": image_id})
        return results

    def prune(self) -> dict[str, Any]:
        """Garbage collection of what no image, tag or live lease references: layers
        (leaf first) and their snapshots, then blobs. Never touches referenced data,
        even while another operation holds a lease."""
        with self._gc_lock:
            return self._prune()

    def _prune(self) -> dict[str, Any]:
        self.meta.expire_leases()
        removed_layers = 0
        for layer in self.meta.unreachable_layers():
            try:
                self.snapshots.remove(layer.chain_id)
                removed_layers += 1
            except Conflict:
                continue
        reachable = self.meta.reachable_blobs()
        reclaimed = 0
        deleted = []
        for digest in list(self.content.walk()):
            if digest in reachable:
                continue
            reclaimed += self.content.info(digest)
            self.content.delete(digest)
            self.meta.forget_blob(digest)
            deleted.append(digest)
        return {
            "LayersDeleted": removed_layers,
            "BlobsDeleted": deleted,
            "SpaceReclaimed": reclaimed,
        }

    @contextmanager
    def rootfs_view(self, name: str, target: Path) -> Iterator[Path]:
        """A read-only mount of an image's filesystem (for export and inspection)."""
        from skiff.image.rootfs import RootfsMounter

        img = self.get(name)
        mounter = RootfsMounter(self.root)
        mounter.mount(self.snapshots.lowers(img.record.chain), target)
        try:
            yield target
        finally:
            mounter.unmount(target)


def _is_id_prefix(text: str, image_id: str) -> bool:
    return len(text) >= 4 and image_id[7:].startswith(text)
