"""``docker pull``: an image from a registry into the image store.

1. The manifest (``GET /v2/<name>/manifests/<tag|digest>``, accepting OCI and Docker
   indexes and manifests); its digest is computed from its bytes and checked against
   the reference's digest (a pull by digest) and the ``Docker-Content-Digest`` header.
   An index gives the manifest for the platform asked for (default: the host).
2. The config blob, checked against its digest.
3. The layers: blobs already in the content store are not fetched again; the others
   download concurrently (``concurrency`` at a time) into the content store with
   their expected digest and size. A dropped connection resumes with a Range request
   from what was written (a bounded number of times); a digest that does not match
   raises DigestMismatch and the partial is deleted.
4. While a layer downloads, the same bytes go through a pipe to the native unpacker
   (into a staging dir), so download, hashing, decompression and extraction overlap.
   A resumed download keeps feeding the same stream; one that has to start over
   abandons it, and so does an unpacker that stops early: such layers (and layers
   whose blob was already stored) are unpacked from the stored blob afterwards.
5. Snapshots are committed in layer order, the image is registered, tagged, and its
   repository digest recorded.

Everything happens under one lease, so a garbage collection running meanwhile keeps
what the pull has written.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import threading
import time
from collections.abc import Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Final

from skiff import _native
from skiff.errors import Conflict, DigestMismatch, InvalidArgument, NotFound, Unavailable
from skiff.image import manifest as mf
from skiff.image.content import digest_bytes
from skiff.image.metadata import ImageRecord
from skiff.image.platform import Platform, parse_platform, select_manifest
from skiff.image.reference import DEFAULT_DOMAIN, Reference, parse_docker_ref
from skiff.image.service import ImageService
from skiff.image.snapshots import LayerSource, new_staging
from skiff.registry.client import RegistryClient, raise_for
from skiff.registry.progress import Counter, Progress, ProgressFn, short_id
from skiff.registry.transport import CONNECTION_ERRORS

#: Largest manifest or index accepted (containerd's limit).
MANIFEST_LIMIT: Final = 4 << 20
#: Largest image config accepted.
CONFIG_LIMIT: Final = 64 << 20
#: Resumptions of one blob download after a dropped connection.
BLOB_RETRIES: Final = 5
_CHUNK: Final = 1 << 20
#: Pipe buffer to the unpacker (Linux caps unprivileged pipes at 1 MiB).
_PIPE_SIZE: Final = 1 << 20
#: Layers downloading (and unpacking) at once. More than Docker's 3: every download
#: feeds an unpack, and from a registry nearby the unpacks are the slow part, so a
#: layer queued behind others starts unpacking late (a layer of many small files last
#: in the manifest waited for a 60 MB download to end first).
DEFAULT_CONCURRENCY: Final = 6


def pull(
    svc: ImageService,
    reference: str,
    *,
    platform: str | None = None,
    config_path: str | os.PathLike[str] | None = None,
    concurrency: int = DEFAULT_CONCURRENCY,
    progress: ProgressFn | None = None,
    mirrors: Sequence[str] = (),
    insecure: Sequence[str] = (),
) -> ImageRecord:
    """Pulls ``reference`` (``busybox``, ``host:5000/x:tag``, ``name@sha256:...``) into
    ``svc``; returns the image's record. ``mirrors`` (URLs, the daemon's
    registry-mirrors) serve docker.io images: each is tried in turn, as Docker does,
    and docker.io itself last; an unreachable mirror or one without the image falls
    through to the next. ``insecure`` (the daemon's insecure-registries) are spoken to
    over plain HTTP, as loopback registries always are."""
    ref = parse_docker_ref(reference)
    want = parse_platform(platform) if platform else None
    report = Progress(progress)
    bases: list[str | None] = [*mirrors] if ref.domain == DEFAULT_DOMAIN else []
    bases.append(None)
    for base in bases:
        client = RegistryClient(ref, config_path=config_path, base=base, insecure=insecure)
        try:
            return _pull(svc, client, ref, want, max(1, concurrency), report)
        except (Unavailable, NotFound):
            if base is None:
                raise
        finally:
            client.close()
    raise AssertionError("unreachable: the last endpoint raises or returns")


def _pull(
    svc: ImageService,
    client: RegistryClient,
    ref: Reference,
    want: Platform | None,
    concurrency: int,
    report: Progress,
) -> ImageRecord:
    what = ref.tag if ref.digest is None else ref.digest
    assert what is not None
    report.status(f"Pulling from {ref.familiar_name}", ref.tag or ref.digest)
    with svc.meta.lease() as lease:
        top_bytes, top_type, top_digest = _fetch_manifest(client, ref, what)
        parsed = mf.parse_manifest(top_bytes, top_type)
        manifest_bytes, manifest_digest = top_bytes, top_digest
        if isinstance(parsed, mf.Index):
            entry = select_manifest(parsed.manifests, want)
            manifest_bytes, media_type, manifest_digest = _fetch_manifest(client, ref, entry.digest)
            parsed = mf.parse_manifest(manifest_bytes, media_type or entry.media_type)
            if not isinstance(parsed, mf.Manifest):
                raise InvalidArgument(f"{entry.digest}: an index entry is not a manifest")
        manifest = parsed
        # Config.
        config_desc = manifest.config
        if config_desc.size > CONFIG_LIMIT:
            raise InvalidArgument(f"image config {config_desc.digest} is too large")
        svc.meta.lease_add(lease, "blob", config_desc.digest)
        if svc.content.exists(config_desc.digest):
            config_bytes = svc.content.read(config_desc.digest)
        else:
            config_bytes = _fetch_small_blob(client, config_desc)
            svc.content.write_blob(config_bytes, expected=config_desc.digest)
        config = mf.ImageConfig.from_json(config_bytes)
        mf.check_layers(manifest, config)
        if any(layer.is_foreign for layer in manifest.layers):
            raise InvalidArgument(
                "images with foreign (non-distributable) layers are not supported"
            )
        image_id = config_desc.digest  # Docker's image ID: the config blob's digest
        had_image = svc.meta.find_image(image_id) is not None
        previous = svc.meta.lookup(ref) if ref.digest is None else image_id
        # Layers: download (and unpack as they come), then commit in order.
        chain = config.chain_ids()
        todo: dict[str, tuple[mf.Descriptor, str | None]] = {}
        for layer, diff_id, cid in zip(manifest.layers, config.diff_ids, chain, strict=True):
            svc.meta.lease_add(lease, "blob", layer.digest)
            snapshot = svc.meta.find_layer(cid)
            have_snapshot = snapshot is not None and not snapshot.incomplete
            if svc.content.exists(layer.digest):
                if have_snapshot:
                    report.status("Already exists", short_id(layer.digest))
                continue
            if layer.digest not in todo:
                todo[layer.digest] = (layer, None if have_snapshot else diff_id)
                report.status("Pulling fs layer", short_id(layer.digest))
        prepared: dict[str, tuple[Path, int]] = {}
        try:
            for digest in list(todo)[concurrency:]:
                report.status("Waiting", short_id(digest))  # queued behind the others
            if todo:
                prepared.update(_download_all(svc, client, todo, concurrency, report))
            sources = []
            for i, (layer, diff_id, cid) in enumerate(
                zip(manifest.layers, config.diff_ids, chain, strict=True)
            ):
                svc.meta.add_blob(layer.digest, layer.size, layer.media_type)
                svc.meta.add_layer_blob(
                    layer.digest, diff_id, layer.media_type, layer.size, repository=ref.name
                )
                sources.append(LayerSource(svc.content.path(layer.digest), layer.digest, diff_id))
                found = svc.meta.find_layer(cid)
                if found is not None and not found.incomplete:
                    svc.meta.lease_add(lease, "layer", cid)
                    continue
                report.status("Extracting", short_id(layer.digest))
                streamed = prepared.pop(layer.digest, None)
                if streamed is not None:
                    work, size = streamed
                    parent = chain[i - 1] if i else None
                    svc.snapshots.add_prepared(parent, diff_id, work, size, lease)
                else:
                    svc.pull_layers(sources, lease)  # the missing ones of this prefix
                report.status("Pull complete", short_id(layer.digest))
        finally:
            for work, _ in prepared.values():
                shutil.rmtree(work, ignore_errors=True)
        # Record.
        svc.meta.add_blob(
            config_desc.digest,
            len(config_bytes),
            config_desc.media_type,
            tuple(layer.digest for layer in manifest.layers),
        )
        children = (config_desc.digest, *(layer.digest for layer in manifest.layers))
        svc.content.write_blob(manifest_bytes, expected=manifest_digest)
        svc.meta.lease_add(lease, "blob", manifest_digest)
        svc.meta.add_blob(manifest_digest, len(manifest_bytes), manifest.media_type, children)
        if top_digest != manifest_digest:
            svc.content.write_blob(top_bytes, expected=top_digest)
            svc.meta.lease_add(lease, "blob", top_digest)
            svc.meta.add_blob(top_digest, len(top_bytes), top_type, (manifest_digest,))
        # Like ``svc.register`` but keeping the config's exact bytes (stored above, with
        # its layers as children), so the image ID is the registry's config digest.
        record = svc.meta.add_image(config_desc.digest, config_bytes, chain)
        if ref.digest is None:
            svc.meta.tag(ref, record.id)
        svc.meta.add_digest(ref.name, top_digest, record.id)
    report.status(f"Digest: {top_digest}")
    if had_image and previous == record.id:
        report.status(f"Status: Image is up to date for {ref.familiar()}")
    else:
        report.status(f"Status: Downloaded newer image for {ref.familiar()}")
    return record


class _Cancelled(Exception):
    """Another download of the pull failed: this one stops."""


def _download_all(
    svc: ImageService,
    client: RegistryClient,
    todo: dict[str, tuple[mf.Descriptor, str | None]],
    concurrency: int,
    report: Progress,
) -> dict[str, tuple[Path, int]]:
    """Downloads (and stream-unpacks) ``todo`` concurrently; returns the staged unpacks
    by blob digest. The first failure stops the others and is raised (after every
    staged unpack was removed)."""
    cancel = threading.Event()
    prepared: dict[str, tuple[Path, int]] = {}
    first_error: BaseException | None = None
    with ThreadPoolExecutor(max_workers=min(concurrency, len(todo))) as pool:
        futures = {
            digest: pool.submit(_download, svc, client, layer, diff_id, report, cancel)
            for digest, (layer, diff_id) in todo.items()
        }
        wait(futures.values(), return_when=FIRST_EXCEPTION)
        if any(f.done() and not f.cancelled() and f.exception() for f in futures.values()):
            cancel.set()
            pool.shutdown(wait=True, cancel_futures=True)
        for digest, fut in futures.items():
            if fut.cancelled():
                continue
            err = fut.exception()
            if err is None:
                result = fut.result()
                if result is not None:
                    prepared[digest] = result
            elif not isinstance(err, _Cancelled) and first_error is None:
                first_error = err
    if first_error is not None:
        for work, _ in prepared.values():
            shutil.rmtree(work, ignore_errors=True)
        raise first_error
    return prepared


def _fetch_manifest(client: RegistryClient, ref: Reference, what: str) -> tuple[bytes, str, str]:
    """(bytes, content type, digest) of a manifest by tag or digest."""
    resp = client.request("GET", f"/manifests/{what}", headers={"Accept": ", ".join(mf.ACCEPT)})
    with resp:
        if resp.status == 404:
            name = ref.familiar_name
            sep = "@" if what.startswith("sha256:") else ":"
            raise NotFound(f"manifest for {name}{sep}{what} not found: manifest unknown")
        if resp.status != 200:
            raise_for(resp, f"manifest for {ref.familiar_name}")
        content_type = resp.header("Content-Type").split(";", 1)[0].strip()
        header_digest = resp.header("Docker-Content-Digest")
        data = resp.read_all(MANIFEST_LIMIT)
    digest = digest_bytes(data)
    if what.startswith("sha256:") and digest != what:
        raise DigestMismatch(f"manifest digest {digest} does not match {what}")
    if header_digest and header_digest.startswith("sha256:") and header_digest != digest:
        raise DigestMismatch(
            f"manifest digest {digest} does not match Docker-Content-Digest {header_digest}"
        )
    return data, content_type, digest


def _fetch_small_blob(client: RegistryClient, desc: mf.Descriptor) -> bytes:
    resp = client.request("GET", f"/blobs/{desc.digest}", follow_redirects=True)
    with resp:
        if resp.status != 200:
            raise_for(resp, f"blob {desc.digest}")
        data = resp.read_all(max(desc.size, 0))
    digest = digest_bytes(data)
    if digest != desc.digest:
        raise DigestMismatch(f"blob digest {digest} does not match {desc.digest}")
    return data


class _Streamer:
    """Feeds a download to the native unpacker through a pipe, so that download,
    hashing, decompression and extraction overlap. The unpack is into a staging dir;
    it is given up (``abandon``) when the download has to start over."""

    def __init__(self, svc: ImageService, layer: mf.Descriptor, diff_id: str) -> None:
        self.work = new_staging(svc.snapshots)
        read_fd, self._fd = os.pipe()
        with contextlib.suppress(OSError, AttributeError):
            fcntl.fcntl(self._fd, fcntl.F_SETPIPE_SZ, _PIPE_SIZE)
        self.abandoned = False
        self.stats: dict[str, object] | None = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(
            target=self._run, args=(read_fd, layer.digest, diff_id), daemon=True
        )
        try:
            self._thread.start()
        except BaseException:
            os.close(read_fd)
            self._close()
            shutil.rmtree(self.work, ignore_errors=True)
            raise

    def _run(self, read_fd: int, digest: str, diff_id: str) -> None:
        try:
            stats = _native.unpack_layer(
                read_fd, self.work / "fs", expected_digest=digest, expected_diff_id=diff_id
            )
            self.stats = dict(stats)
        except BaseException as err:
            self.error = err

    def _close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def feed(self, data: bytes) -> None:
        if self._fd < 0:
            return
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(self._fd, view) :]
        except OSError:  # the unpacker stopped (a broken layer): the stored blob decides
            self.abandon()

    def abandon(self) -> None:
        self.abandoned = True
        self._close()

    def finish(self) -> tuple[Path, int] | None:
        """(staging dir, unpacked size), or None when the streamed unpack did not
        succeed (the layer is then unpacked from the stored blob)."""
        self._close()
        self._thread.join()
        if self.abandoned or self.error is not None or self.stats is None:
            shutil.rmtree(self.work, ignore_errors=True)
            return None
        size = self.stats.get("size")
        return self.work, int(size) if isinstance(size, int) else 0

    def discard(self) -> None:
        self.abandon()
        self._thread.join()
        shutil.rmtree(self.work, ignore_errors=True)


def _download(
    svc: ImageService,
    client: RegistryClient,
    layer: mf.Descriptor,
    diff_id: str | None,
    report: Progress,
    cancel: threading.Event | None = None,
) -> tuple[Path, int] | None:
    """One layer blob into the content store, resuming dropped connections. With
    ``diff_id`` the bytes are also unpacked on the way: returns the staged unpack
    (None when there is none)."""
    sid = short_id(layer.digest)
    ref = f"pull-{layer.digest}"
    deadline = time.monotonic() + 600
    while True:  # another pull may be writing the same blob
        if svc.content.exists(layer.digest):
            report.status("Download complete", sid)
            return None
        try:
            writer = svc.content.ingest(ref, layer.digest, layer.size)
        except Conflict:
            if cancel is not None and cancel.is_set():
                raise _Cancelled() from None
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
            continue
        break
    counter = Counter(report, "Downloading", sid, layer.size)
    streamer: _Streamer | None = None
    try:
        with writer:
            if diff_id is not None and writer.offset == 0 and layer.size > 0:
                streamer = _Streamer(svc, layer, diff_id)
            failures = 0
            while True:
                headers = {}
                offset = writer.offset
                if offset:
                    headers["Range"] = f"bytes={offset}-"
                try:
                    resp = client.request(
                        "GET", f"/blobs/{layer.digest}", headers=headers, follow_redirects=True
                    )
                    with resp:
                        restart = False
                        if resp.status == 200:
                            restart = offset > 0  # the server ignored the Range
                        elif resp.status == 206:
                            restart = _range_start(resp.header("Content-Range")) != offset
                        elif resp.status == 416 and offset:
                            restart = True
                        else:
                            raise_for(resp, f"blob {layer.digest}")
                        if restart:
                            writer.truncate(0)
                            if streamer is not None:
                                streamer.abandon()
                            if resp.status != 200:
                                raise ConnectionError("the registry did not resume the blob")
                        counter.set(writer.offset)
                        while chunk := resp.read(_CHUNK):
                            if cancel is not None and cancel.is_set():
                                raise _Cancelled()
                            writer.write(chunk)
                            if streamer is not None:
                                streamer.feed(chunk)
                            counter.set(writer.offset)
                        if writer.offset < layer.size:
                            raise ConnectionError("connection closed before the end of the blob")
                except CONNECTION_ERRORS as err:
                    failures += 1
                    if failures > BLOB_RETRIES:
                        raise Unavailable(f"downloading {layer.digest}: {err}") from err
                    time.sleep(min(0.25 * 2 ** (failures - 1), 5.0))
                    continue
                break
            report.status("Verifying Checksum", sid)
            writer.commit()  # size and digest; a mismatch deletes the partial
        report.status("Download complete", sid)
        result = streamer.finish() if streamer is not None else None
        streamer = None
        return result
    finally:
        if streamer is not None:
            streamer.discard()


def _range_start(content_range: str) -> int | None:
    """The first byte of ``bytes START-END/TOTAL``."""
    unit, _, spec = content_range.partition(" ")
    if unit != "bytes":
        return None
    start = spec.partition("-")[0]
    return int(start) if start.isdigit() else None
