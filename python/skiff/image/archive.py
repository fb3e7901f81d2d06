"""Image archives: ``docker save`` / ``docker load`` tars and OCI image layouts.

A saved tar holds both forms at once, as docker 25+ writes it, so that old and new
docker, skopeo (``docker-archive:`` or ``oci-archive:``) and Skiff can all read it::

    oci-layout                    {"imageLayoutVersion": "1.0.0"}
    index.json                    one manifest descriptor per image (ref name annotations)
    blobs/sha256/<hex>            configs, manifests and layer blobs
    manifest.json                 [{"Config": "blobs/sha256/<hex>", "RepoTags": [...],
                                    "Layers": ["blobs/sha256/<hex>", ...]}]

``save_layout`` writes the same OCI layout as a directory (umoci and skopeo's
``oci:`` read it). Loading accepts a docker tar (``manifest.json``, with any member
names, e.g. old ``<id>/layer.tar``), an OCI tar, or an OCI layout directory; every
blob is checked against its digest and every layer against the config's diff IDs,
and nothing from the archive is ever written to a path it names.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from skiff.errors import InvalidArgument
from skiff.image import manifest as mf
from skiff.image.content import digest_bytes
from skiff.image.reference import parse_normalized
from skiff.image.service import ImageService
from skiff.image.snapshots import LayerSource

LAYOUT = {"imageLayoutVersion": "1.0.0"}
REF_NAME = "org.opencontainers.image.ref.name"
CONTAINERD_NAME = "io.containerd.image.name"
GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


@dataclass
class _Entry:
    image_id: str
    names: list[str]
    manifest: mf.Manifest
    manifest_bytes: bytes


def _blob_name(digest: str) -> str:
    return f"blobs/sha256/{digest.split(':', 1)[1]}"


def _entries(svc: ImageService, names: Sequence[str]) -> list[_Entry]:
    entries: dict[str, _Entry] = {}
    for name in names:
        image_id = svc.meta.resolve(name)
        man = svc.manifest_of(image_id)
        entry = entries.setdefault(image_id, _Entry(image_id, [], man, man.to_bytes()))
        if not name.startswith("sha256:") and not image_id[7:].startswith(name):
            entry.names.append(parse_normalized(name).string())
    return list(entries.values())


def _index(entries: Iterable[_Entry]) -> bytes:
    manifests = []
    for e in entries:
        desc: dict[str, Any] = {
            "mediaType": mf.OCI_MANIFEST,
            "digest": digest_bytes(e.manifest_bytes),
            "size": len(e.manifest_bytes),
        }
        if e.names:
            ref = parse_normalized(e.names[0])
            desc["annotations"] = {CONTAINERD_NAME: ref.string(), REF_NAME: ref.tag or "latest"}
        manifests.append(desc)
    return mf.canonical_json(
        {"schemaVersion": 2, "mediaType": mf.OCI_INDEX, "manifests": manifests}
    )


def _docker_manifest(entries: Iterable[_Entry]) -> bytes:
    out = []
    for e in entries:
        out.append(
            {
                "Config": _blob_name(e.manifest.config.digest),
                "RepoTags": [parse_normalized(n).familiar() for n in e.names],
                "Layers": [_blob_name(layer.digest) for layer in e.manifest.layers],
            }
        )
    return json.dumps(out, separators=(",", ":")).encode()


def save(svc: ImageService, names: Sequence[str], out: IO[bytes]) -> None:
    """``docker save``: writes the images' tar (docker + OCI layout) to ``out``."""
    entries = _entries(svc, names)
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        written: set[str] = set()

        def add_bytes(name: str, data: bytes) -> None:
            info = _info(name, len(data))
            tar.addfile(info, io.BytesIO(data))

        def add_blob(digest: str) -> None:
            if digest in written:
                return
            written.add(digest)
            path = svc.content.path(digest)
            with path.open("rb") as f:
                tar.addfile(_info(_blob_name(digest), path.stat().st_size), f)

        for e in entries:
            add_blob(e.manifest.config.digest)
            for layer in e.manifest.layers:
                add_blob(layer.digest)
            digest = digest_bytes(e.manifest_bytes)
            if digest not in written:
                written.add(digest)
                add_bytes(_blob_name(digest), e.manifest_bytes)
        add_bytes("index.json", _index(entries))
        add_bytes("manifest.json", _docker_manifest(entries))
        add_bytes("oci-layout", json.dumps(LAYOUT).encode())


def save_layout(svc: ImageService, names: Sequence[str], dest: Path) -> None:
    """Writes (or adds to) an OCI image layout directory at ``dest``."""
    entries = _entries(svc, names)
    blobs = dest / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)

    def put(digest: str, data: bytes | None = None) -> None:
        target = blobs / digest.split(":", 1)[1]
        if target.exists():
            return
        tmp = target.with_suffix(".tmp")
        if data is None:
            import shutil

            shutil.copyfile(svc.content.path(digest), tmp)
        else:
            tmp.write_bytes(data)
        os.replace(tmp, target)

    for e in entries:
        put(e.manifest.config.digest)
        for layer in e.manifest.layers:
            put(layer.digest)
        put(digest_bytes(e.manifest_bytes), e.manifest_bytes)
    index_path = dest / "index.json"
    existing: list[dict[str, Any]] = []
    if index_path.exists():
        existing = json.loads(index_path.read_text()).get("manifests", [])
    new = json.loads(_index(entries))["manifests"]
    replaced = {json.dumps(d.get("annotations", {}), sort_keys=True) for d in new}
    kept = [
        d for d in existing if json.dumps(d.get("annotations", {}), sort_keys=True) not in replaced
    ]
    index = {"schemaVersion": 2, "mediaType": mf.OCI_INDEX, "manifests": kept + new}
    index_path.write_bytes(mf.canonical_json(index))
    (dest / "oci-layout").write_text(json.dumps(LAYOUT))


def _info(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mode = 0o644
    info.mtime = 0
    return info


# --------------------------------------------------------------------------- loading


class _Source:
    """Member access for a tar archive or a layout directory."""

    def __init__(self, tar: tarfile.TarFile | None, root: Path | None) -> None:
        self.tar = tar
        self.root = root

    def names(self) -> set[str]:
        if self.tar is not None:
            return {m.name.lstrip("./") for m in self.tar.getmembers() if m.isfile()}
        assert self.root is not None
        return {str(p.relative_to(self.root)) for p in self.root.rglob("*") if p.is_file()}

    def open(self, name: str) -> IO[bytes]:
        if self.tar is not None:
            for candidate in (name, f"./{name}"):
                try:
                    f = self.tar.extractfile(candidate)
                except KeyError:
                    continue
                if f is not None:
                    return f
            raise InvalidArgument(f"archive has no file {name!r}")
        assert self.root is not None
        path = (self.root / name).resolve()
        if not path.is_relative_to(self.root.resolve()):
            raise InvalidArgument(f"archive path {name!r} leaves the archive")
        return path.open("rb")

    def read(self, name: str, limit: int = 64 * 1024 * 1024) -> bytes:
        with self.open(name) as f:
            data = f.read(limit + 1)
        if len(data) > limit:
            raise InvalidArgument(f"{name} is too large for a JSON document")
        return data


def _ingest(svc: ImageService, src: _Source, name: str, lease: str) -> str:
    """Copies an archive member into the content store; a name of the form
    blobs/sha256/<hex> is the digest it must have."""
    expected = None
    parts = name.split("/")
    if len(parts) == 3 and parts[0] == "blobs" and parts[1] == "sha256":
        expected = f"sha256:{parts[2]}"
    ref = f"load-{lease}-{name.replace('/', '_')}"
    with src.open(name) as f, svc.content.ingest(ref, expected=expected) as w:
        while chunk := f.read(1024 * 1024):
            w.write(chunk)
        digest = w.commit(expected)
    svc.meta.lease_add(lease, "blob", digest)
    return digest


def _media_type(svc: ImageService, digest: str) -> str:
    with svc.content.open(digest) as f:
        head = f.read(4)
    if head.startswith(GZIP_MAGIC):
        return mf.OCI_LAYER_GZIP
    if head.startswith(ZSTD_MAGIC):
        return mf.OCI_LAYER_ZSTD
    return mf.OCI_LAYER


def load(svc: ImageService, archive: Path) -> list[str]:
    """``docker load`` of a tar, or of an OCI layout directory: returns "Loaded image:
    NAME" / "Loaded image ID: ID" lines like docker's."""
    if archive.is_dir():
        return _load(svc, _Source(None, archive))
    try:
        with tarfile.open(archive, mode="r:*") as tar:
            return _load(svc, _Source(tar, None))
    except tarfile.TarError as err:
        raise InvalidArgument(f"not an image archive: {err}") from None


def _load(svc: ImageService, src: _Source) -> list[str]:
    names = src.names()
    images: list[tuple[str, list[str], list[str]]] = []  # (config name, layer names, tags)
    if "manifest.json" in names:
        try:
            docker = json.loads(src.read("manifest.json"))
            for item in docker:
                images.append(
                    (
                        str(item["Config"]),
                        [str(x) for x in item["Layers"]],
                        [str(t) for t in item.get("RepoTags") or []],
                    )
                )
        except (ValueError, KeyError, TypeError) as err:
            raise InvalidArgument(f"invalid manifest.json: {err}") from None
    elif "index.json" in names:
        index = mf.parse_manifest(src.read("index.json"))
        if not isinstance(index, mf.Index):
            raise InvalidArgument("index.json is not an image index")
        for desc in index.manifests:
            man = mf.parse_manifest(src.read(_blob_name(desc.digest)))
            if not isinstance(man, mf.Manifest):
                continue
            tag = desc.annotations.get(CONTAINERD_NAME) or desc.annotations.get(REF_NAME, "")
            images.append(
                (
                    _blob_name(man.config.digest),
                    [_blob_name(x.digest) for x in man.layers],
                    [tag] if tag else [],
                )
            )
    else:
        raise InvalidArgument("not an image archive: no manifest.json or index.json")
    out = []
    with svc.meta.lease() as lease:
        for config_name, layer_names, tags in images:
            config_digest = _ingest(svc, src, config_name, lease)
            config = mf.ImageConfig.from_json(svc.content.read(config_digest))
            if len(config.diff_ids) != len(layer_names):
                raise InvalidArgument(
                    f"{config_digest}: {len(layer_names)} layers,"
                    f" the config lists {len(config.diff_ids)}"
                )
            layers = []
            sources = []
            for name, diff_id in zip(layer_names, config.diff_ids, strict=True):
                digest = _ingest(svc, src, name, lease)
                media_type = _media_type(svc, digest)
                size = svc.content.info(digest)
                svc.meta.add_blob(digest, size, media_type)
                svc.meta.add_layer_blob(digest, diff_id, media_type, size)
                layers.append(mf.Descriptor(media_type, digest, size))
                sources.append(LayerSource(svc.content.path(digest), digest, diff_id))
            chain = svc.pull_layers(sources, lease)
            record = svc.register(config, layers, chain)
            if tags:
                for t in tags:
                    svc.meta.tag(parse_normalized(t), record.id)
                    out.append(f"Loaded image: {parse_normalized(t).familiar()}")
            else:
                out.append(f"Loaded image ID: {record.id}")
    return out
