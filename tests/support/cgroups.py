"""Cgroup parents that tests make on purpose (a runtime leaves the parent of a
container's cgroup in place, as runc does): removed at the end, leaf-first."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

ROOT = Path("/sys/fs/cgroup")


def mountinfo_lines() -> list[str]:
    """The cgroup and cgroup2 lines of this process's mountinfo, as they are."""
    lines = Path("/proc/self/mountinfo").read_text().splitlines(keepends=True)
    return [ln for ln in lines if ln.split(" - ")[1].split()[0] in ("cgroup", "cgroup2")]


def hierarchies() -> list[Path]:
    """Every mounted hierarchy: the v2 root, or each v1 controller directory."""
    if (ROOT / "cgroup.controllers").exists():
        return [ROOT]
    return [p for p in ROOT.iterdir() if p.is_dir() and not p.is_symlink() and os.path.ismount(p)]


def remove_tree(relative: str) -> None:
    """rmdir ``relative`` (and any empty children) in every hierarchy, if present."""
    for h in hierarchies():
        top = h / relative.strip("/")
        if not top.is_dir():
            continue
        for dirpath, _dirs, _files in sorted(os.walk(top), key=lambda w: -len(w[0])):
            with contextlib.suppress(OSError):
                os.rmdir(dirpath)


def pids(relative: str) -> set[int]:
    """The processes in ``relative`` and below it, in every hierarchy."""
    found: set[int] = set()
    for h in hierarchies():
        top = h / relative.strip("/")
        for dirpath, _dirs, _files in os.walk(top):
            with contextlib.suppress(OSError):
                found.update(int(p) for p in (Path(dirpath) / "cgroup.procs").read_text().split())
    return found
