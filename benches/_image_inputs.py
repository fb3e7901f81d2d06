"""Inputs shared by the image benchmarks: the "big image" of BENCHMARKS.md (busybox
plus four layers: 60 MiB random, 60 MiB random, `seq 1 8000000`, 20,000 files of
1,029 bytes) as gzip layer tars and as an OCI layout, built fresh (untimed)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.support.images import build_busybox_tar  # noqa: E402

MIB = 1 << 20


def small_files(dest: Path, count: int = 20_000) -> Path:
    """``count`` files of 1,029 bytes (hex of 514 random bytes plus a newline)."""
    dest.mkdir(parents=True)
    for i in range(count):
        (dest / f"f{i:05d}").write_bytes(os.urandom(514).hex().encode() + b"\n")
    return dest


def layer_dirs(base: Path) -> list[Path]:
    dirs = []
    for i in (1, 2):
        d = base / f"layer{i}"
        d.mkdir(parents=True)
        with (d / f"random{i}.bin").open("wb") as f:
            for _ in range(60):
                f.write(os.urandom(MIB))
        dirs.append(d)
    d = base / "layer3"
    d.mkdir()
    with (d / "seq.txt").open("wb") as f:
        subprocess.run(["seq", "1", "8000000"], stdout=f, check=True)
    dirs.append(d)
    dirs.append(small_files(base / "layer4" / "data"))
    return dirs


def gzip_layer(src: Path, out: Path) -> Path:
    subprocess.run(["tar", "-czf", str(out), "-C", str(src), "."], check=True)
    return out


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(MIB):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def diff_id(path: Path) -> str:
    h = hashlib.sha256()
    proc = subprocess.Popen(["gzip", "-dc", str(path)], stdout=subprocess.PIPE)
    assert proc.stdout is not None
    while chunk := proc.stdout.read(MIB):
        h.update(chunk)
    proc.wait()
    return "sha256:" + h.hexdigest()


def oci_layout(base: Path, layers: list[Path], tag: str = "big") -> Path:
    """An OCI layout holding an image of ``layers`` (gzip tars, base first)."""
    layout = base / "layout"
    blobs = layout / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    descs, diff_ids = [], []
    for layer in layers:
        digest = sha256(layer)
        os.link(layer, blobs / digest[7:])
        descs.append(
            {
                "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                "digest": digest,
                "size": layer.stat().st_size,
            }
        )
        diff_ids.append(diff_id(layer))

    def put(obj: dict[str, object]) -> dict[str, object]:
        data = json.dumps(obj, separators=(",", ":")).encode()
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        (blobs / digest[7:]).write_bytes(data)
        return {"digest": digest, "size": len(data)}

    cfg = put(
        {
            "architecture": "amd64",
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "config": {},
        }
    )
    man = put(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **cfg},
            "layers": descs,
        }
    )
    index = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                **man,
                "annotations": {"org.opencontainers.image.ref.name": tag},
            }
        ],
    }
    (layout / "index.json").write_text(json.dumps(index))
    (layout / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    return layout


def big_image(base: Path) -> tuple[list[Path], Path]:
    """The big image's gzip layers (busybox first) and its OCI layout."""
    busybox = base / "busybox"
    busybox.mkdir(parents=True)
    subprocess.run(
        ["tar", "-xf", str(build_busybox_tar(base / "busybox.tar")), "-C", str(busybox)], check=True
    )
    sources = [busybox, *layer_dirs(base / "src")]
    layers = [gzip_layer(src, base / f"layer{i}.tar.gz") for i, src in enumerate(sources)]
    return layers, oci_layout(base, layers)
