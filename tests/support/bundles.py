"""OCI bundles for runtime tests: a fresh root filesystem unpacked from one of the
test image tars, and a config.json with Docker's defaults that a test may edit."""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from skiff.errors import NotFound
from skiff.runtime.bundle import write_bundle
from skiff.runtime.driver import Runtime
from skiff.runtime.spec import default_config


@dataclass
class Bundle:
    id: str
    path: Path
    config: dict[str, Any]

    @property
    def rootfs(self) -> Path:
        return self.path / "rootfs"

    def write(self) -> None:
        write_bundle(self.path, self.config)


@dataclass
class BundleFactory:
    """Makes bundles whose cgroups live under ``cgroup_parent`` (removed by the
    session's runtime fixture)."""

    runtime: Runtime
    base: Path
    cgroup_parent: str
    made: list[Bundle] = field(default_factory=list)

    def __call__(
        self,
        tar: Path,
        args: list[str],
        edit: Callable[[dict[str, Any]], None] | None = None,
        **config: Any,
    ) -> Bundle:
        cid = f"skt-{uuid.uuid4().hex[:10]}"
        path = self.base / cid
        (path / "rootfs").mkdir(parents=True)
        subprocess.run(["tar", "-xf", str(tar), "-C", str(path / "rootfs")], check=True)
        config.setdefault("cgroups_path", f"/{self.cgroup_parent}/{cid}")
        cfg = default_config(args, **config)
        if edit is not None:
            edit(cfg)
        bundle = Bundle(cid, path, cfg)
        bundle.write()
        self.made.append(bundle)
        return bundle

    def cleanup(self) -> None:
        for b in self.made:
            with contextlib.suppress(NotFound):
                self.runtime.delete(b.id, force=True)
            shutil.rmtree(b.path, ignore_errors=True)


def run_json(runtime: Runtime, bundle: Bundle) -> tuple[int, dict[str, Any], str]:
    """``skiff-runtime run`` of a probe bundle: (exit code, what the probe saw, stderr)."""
    out = runtime.run(bundle.id, bundle.path)
    text = out.stdout.decode(errors="replace")
    try:
        seen = json.loads(text) if text.strip() else {}
    except ValueError as err:
        raise AssertionError(f"probe printed no JSON: {text!r} {out.stderr!r}") from err
    return out.returncode, seen, out.stderr.decode(errors="replace")
