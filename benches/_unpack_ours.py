"""One whole-process unpack by Skiff, as `benches/run unpack` times it: every layer of
the image in an OCI layout, verified against its digest and diff ID, into snapshots
of a fresh store (parallel unpack, in-order commit)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from skiff.image.service import ImageService
from skiff.image.snapshots import LayerSource


def main(layout: Path, data_root: Path) -> None:
    index = json.loads((layout / "index.json").read_text())
    blobs = layout / "blobs" / "sha256"
    manifest = json.loads((blobs / index["manifests"][0]["digest"][7:]).read_text())
    config = json.loads((blobs / manifest["config"]["digest"][7:]).read_text())
    sources = [
        LayerSource(blobs / layer["digest"][7:], layer["digest"], diff_id)
        for layer, diff_id in zip(manifest["layers"], config["rootfs"]["diff_ids"], strict=True)
    ]
    svc = ImageService(data_root)
    svc.pull_layers(sources)
    svc.close()


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
