"""Where the skiff-runtime binary is.

The install puts it beside the Python interpreter of the virtualenv (and links it into
/usr/local/bin); ``SKIFF_RUNTIME`` overrides both, and ``PATH`` is the last resort.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from skiff.errors import NotFound

RUNTIME_NAME = "skiff-runtime"


def find_runtime() -> Path:
    override = os.environ.get("SKIFF_RUNTIME")
    if override:
        return Path(override)
    beside = Path(sys.executable).parent / RUNTIME_NAME
    if beside.is_file() and os.access(beside, os.X_OK):
        return beside
    found = shutil.which(RUNTIME_NAME)
    if found:
        return Path(found)
    raise NotFound(f"{RUNTIME_NAME} not found: run the setup command, or set SKIFF_RUNTIME")


def runtime_version(path: Path) -> str:
    """The version skiff-runtime reports (first line of ``--version``), or ``""``."""
    try:
        out = subprocess.run([str(path), "--version"], capture_output=True, text=True, timeout=10)
    except OSError:
        return ""
    first = out.stdout.splitlines()[0] if out.stdout else ""
    return first.rsplit(" ", 1)[-1] if out.returncode == 0 else ""
