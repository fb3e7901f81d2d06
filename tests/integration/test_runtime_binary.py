from __future__ import annotations

import subprocess

from skiff.runtime.binary import find_runtime, runtime_version
from skiff.version import __version__


def test_skiff_runtime_version() -> None:
    path = find_runtime()
    out = subprocess.run([str(path), "--version"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0
    assert out.stdout.splitlines()[0] == f"skiff-runtime version {__version__}"
    assert out.stdout.splitlines()[1].startswith("spec: 1.")
    assert runtime_version(path) == __version__
