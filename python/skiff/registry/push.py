"""``docker push``: an image from the store to a registry.

The manifest pushed is the store's OCI manifest of the image
(:meth:`skiff.image.service.ImageService.manifest_of`: its config and the compressed
blobs the store holds for its layers, with OCI media types). Each blob, layers then
config, is checked with ``HEAD /v2/<name>/blobs/<digest>`` and, when missing, uploaded
in one piece (``POST /v2/<name>/blobs/uploads/`` then ``PUT <location>?digest=`` with
the whole body) or in chunks (``PATCH`` with ``Content-Range``, then an empty ``PUT``),
``concurrency`` layers at a time; a blob the store knows to be in
another repository of the same registry is mounted from there first (``POST
.../blobs/uploads/?mount=<digest>&from=<repository>``). Then the manifest is put
under the tag (only the tag named: a reference without one pushes ``latest``). The registry's
``Docker-Content-Digest`` must equal the sha256 of the bytes sent; the digest is
recorded as the image's repository digest.
"""

from __future__ import annotations

import io
import os
import time
import urllib.parse
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import IO, Final

from skiff.errors import (
    DigestMismatch,
    Forbidden,
    InvalidArgument,
    NotFound,
    Unauthorized,
    Unavailable,
)
from skiff.image import manifest as mf
from skiff.image.content import digest_bytes
from skiff.image.reference import Reference, parse_normalized
from skiff.image.service import ImageService
from skiff.registry.client import RegistryClient, raise_for
from skiff.registry.progress import Counter, Progress, ProgressFn, short_id
from skiff.registry.transport import CONNECTION_ERRORS

#: Attempts of one blob upload (each starts a new upload session).
UPLOAD_ATTEMPTS: Final = 3


def push(
    svc: ImageService,
    reference: str,
    *,
    config_path: str | os.PathLike[str] | None = None,
    progress: ProgressFn | None = None,
    concurrency: int = 5,
    chunk_size: int | None = None,
    insecure: Sequence[str] = (),
) -> str:
    """Pushes the image ``reference`` names (``host:5000/x:tag``; ``latest`` when no
    tag) under that tag; returns the manifest digest. Layers upload ``concurrency``
    at a time (Docker's default is 5), each in one PUT, or in ``PATCH`` chunks of
    ``chunk_size`` bytes when given (for registries or proxies that limit bodies)."""
    ref = parse_normalized(reference)
    if ref.digest is not None or ref.tag is None:
        raise InvalidArgument(f"cannot push a digest reference: {reference}")
    image_id = svc.meta.resolve(ref.string())
    stored = svc.manifest_of(image_id)
    diff_ids = mf.ImageConfig.from_json(svc.meta.get_image(image_id).config).diff_ids
    layers = tuple(_oci_layer(layer) for layer in stored.layers)
    manifest = mf.Manifest(mf.OCI_MANIFEST, stored.config, layers)
    body = manifest.to_bytes()
    digest = digest_bytes(body)
    report = Progress(progress)
    report.status(f"The push refers to repository [{ref.familiar_name}]")
    client = RegistryClient(ref, push=True, config_path=config_path, insecure=insecure)
    try:
        unique = list(dict.fromkeys(layer.digest for layer in layers))
        for layer_digest in unique:
            report.status("Preparing", short_id(layer_digest))
        sizes = {layer.digest: layer.size for layer in layers}

        def one(layer_digest: str) -> None:
            sid = short_id(layer_digest)
            if _exists(client, layer_digest):
                report.status("Layer already exists", sid)
                return
            mounted = _mount(client, layer_digest, _mount_sources(svc, ref, layer_digest))
            if mounted is not None:
                report.status(f"Mounted from {mounted}", sid)
                return
            counter = Counter(report, "Pushing", sid, sizes[layer_digest])
            _upload(svc, client, layer_digest, counter, chunk_size=chunk_size)
            report.status("Pushed", sid)

        if unique:
            with ThreadPoolExecutor(max_workers=max(1, min(concurrency, len(unique)))) as pool:
                futures = [pool.submit(one, d) for d in unique]
                errors = [f.exception() for f in futures]
            for err in errors:
                if err is not None:
                    raise err
        config_digest = manifest.config.digest
        if not _exists(client, config_digest):
            config_bytes = None
            if not svc.content.exists(config_digest):
                config_bytes = svc.meta.get_image(image_id).config
            _upload(svc, client, config_digest, None, config_bytes)
        resp = client.request(
            "PUT",
            f"/manifests/{ref.tag}",
            headers={"Content-Type": manifest.media_type},
            body=body,
        )
        with resp:
            if resp.status not in (200, 201, 202):
                raise_for(resp, f"manifest for {ref.familiar()}")
            returned = resp.header("Docker-Content-Digest")
            resp.read()
        if returned and returned != digest:
            raise DigestMismatch(f"registry stored manifest {returned}, sent {digest}")
    finally:
        client.close()
    svc.meta.add_digest(ref.name, digest, image_id)
    for layer, diff_id in zip(stored.layers, diff_ids, strict=True):
        # Where the blob now is: a later push to another repository mounts it from here.
        svc.meta.add_layer_blob(
            layer.digest, diff_id, layer.media_type, layer.size, repository=ref.name
        )
    report.status(f"{ref.tag}: digest: {digest} size: {len(body)}")
    report.send(
        {
            "progressDetail": {},
            "aux": {"Tag": ref.tag, "Digest": digest, "Size": len(body)},
        }
    )
    return digest


def _oci_layer(layer: mf.Descriptor) -> mf.Descriptor:
    """The layer with the OCI media type of its compression (stored Docker types)."""
    if layer.media_type.startswith("application/vnd.oci."):
        return layer
    compression = mf.layer_compression(layer.media_type)
    return mf.Descriptor(mf.layer_media_type(compression), layer.digest, layer.size)


def _mount_sources(svc: ImageService, ref: Reference, digest: str) -> list[str]:
    """Other repositories of the same registry the blob is known to be in (paths)."""
    diff_id = svc.meta.diff_id_of_blob(digest)
    if diff_id is None:
        return []
    prefix = ref.domain + "/"
    return [
        b.repository[len(prefix) :]
        for b in svc.meta.blobs_of_diff_id(diff_id)
        if b.blob_digest == digest and b.repository.startswith(prefix) and b.repository != ref.name
    ]


def _mount(client: RegistryClient, digest: str, sources: list[str]) -> str | None:
    """Mounts the blob from the first source the registry accepts (cross-repository
    blob mount); returns that source, or None (then the blob is uploaded)."""
    for source in sources[:3]:
        query = urllib.parse.urlencode({"mount": digest, "from": source})
        try:
            resp = client.request("POST", f"/blobs/uploads/?{query}")
        except (Unauthorized, Forbidden, NotFound):
            continue
        with resp:
            resp.read()
            if resp.status == 201:
                return source
        # 202: the registry opened an upload session instead; it expires unused.
    return None


def _exists(client: RegistryClient, digest: str) -> bool:
    resp = client.request("HEAD", f"/blobs/{digest}")
    with resp:
        resp.read()
        if resp.status == 200:
            return True
        if resp.status == 404:
            return False
        raise_for(resp, f"blob {digest}")
    return False


class _CountingReader:
    """A file whose reads report progress (http.client sends it in blocks)."""

    def __init__(self, f: IO[bytes], counter: Counter | None) -> None:
        self.f = f
        self.counter = counter

    def read(self, n: int = -1, /) -> bytes:
        data = self.f.read(n)
        if self.counter is not None and data:
            self.counter.add(len(data))
        return data

    def seek(self, offset: int, whence: int = 0, /) -> int:
        pos = self.f.seek(offset, whence)
        if self.counter is not None:
            self.counter.set(pos)
        return pos

    def tell(self) -> int:
        return self.f.tell()

    def seekable(self) -> bool:
        return True


def _patch_chunks(
    client: RegistryClient, url: str, reader: _CountingReader, size: int, chunk: int, digest: str
) -> str:
    """Sends ``size`` bytes as PATCH requests of ``chunk`` bytes with Content-Range;
    returns the upload URL the registry gave last (each answer may move it)."""
    offset = 0
    while offset < size:
        data = reader.read(min(chunk, size - offset))
        if not data:
            raise InvalidArgument(f"upload of {digest}: the blob ended at {offset} of {size} bytes")
        resp = client.request(
            "PATCH",
            url,
            headers={
                "Content-Type": "application/octet-stream",
                "Content-Length": str(len(data)),
                "Content-Range": f"{offset}-{offset + len(data) - 1}",
            },
            body=data,
            retry=False,
        )
        with resp:
            resp.read()
            if resp.status != 202:
                raise_for(resp, f"upload of {digest} at {offset}")
            location = resp.header("Location")
        if location:
            url = urllib.parse.urljoin(url, location)
        offset += len(data)
    return url


def _upload(
    svc: ImageService,
    client: RegistryClient,
    digest: str,
    counter: Counter | None,
    data: bytes | None = None,
    *,
    chunk_size: int | None = None,
) -> None:
    """One blob, from the content store (or ``data``): in one PUT, or as PATCH chunks
    then an empty PUT with the digest."""
    size = svc.content.info(digest) if data is None else len(data)
    for attempt in range(UPLOAD_ATTEMPTS):
        if attempt:
            time.sleep(0.25 * 2 ** (attempt - 1))
        resp = client.request("POST", "/blobs/uploads/")
        with resp:
            resp.read()
            if resp.status not in (201, 202):
                raise_for(resp, f"upload of {digest}")
            location = resp.header("Location")
        if not location:
            raise InvalidArgument(f"upload of {digest}: the registry sent no Location")
        url = urllib.parse.urljoin(client.url("/blobs/uploads/"), location)
        if counter is not None:
            counter.set(0)
        try:
            with svc.content.open(digest) if data is None else io.BytesIO(data) as f:
                reader = _CountingReader(f, counter)
                body_size = size
                if chunk_size:
                    url = _patch_chunks(client, url, reader, size, chunk_size, digest)
                    reader = _CountingReader(io.BytesIO(b""), None)
                    body_size = 0
                sep = "&" if urllib.parse.urlsplit(url).query else "?"
                url += sep + urllib.parse.urlencode({"digest": digest})
                resp = client.request(
                    "PUT",
                    url,
                    headers={
                        "Content-Type": "application/octet-stream",
                        "Content-Length": str(body_size),
                    },
                    body=reader,
                    retry=False,
                )
        except (Unavailable, *CONNECTION_ERRORS) as err:
            if attempt + 1 < UPLOAD_ATTEMPTS:
                continue
            raise Unavailable(f"upload of {digest}: {err}") from err
        with resp:
            if resp.status >= 500 and attempt + 1 < UPLOAD_ATTEMPTS:
                continue
            if resp.status not in (201, 204):
                raise_for(resp, f"upload of {digest}")
            resp.read()
        return
