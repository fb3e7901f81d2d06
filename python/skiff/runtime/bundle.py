"""OCI bundles: a directory holding config.json and (usually) the root filesystem.

Layout written here::

    <bundle>/config.json
    <bundle>/rootfs/          unless config["root"]["path"] points elsewhere
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from skiff import jsontext


def write_bundle(bundle: Path, config: dict[str, Any]) -> Path:
    """Writes ``config.json`` atomically into ``bundle`` (created if missing)."""
    tmp = bundle / "config.json.tmp"
    data = jsontext.dumps(config)  # (on every container start: fast)
    try:
        tmp.write_bytes(data)
    except FileNotFoundError:  # (a container's bundle is there: no mkdir per start)
        bundle.mkdir(parents=True, exist_ok=True, mode=0o711)
        tmp.write_bytes(data)
    os.replace(tmp, bundle / "config.json")
    return bundle


def read_config(bundle: Path) -> dict[str, Any]:
    config: dict[str, Any] = json.loads((bundle / "config.json").read_text())
    return config
