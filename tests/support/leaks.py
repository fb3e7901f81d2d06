"""What a test run leaves behind on the machine.

A :class:`Snapshot` records mounts, network namespaces, network links, cgroups and
processes; :func:`leaks` compares a later snapshot with an earlier one and names what
is new. The test session takes one at its start and fails the run if the one at its
end shows anything new (see ``tests/conftest.py``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
#: How deep to walk each cgroup hierarchy; tests create theirs within this depth.
CGROUP_DEPTH = 4
#: Cgroups are only ours when named so: the machine's own supervisor makes and
#: removes cgroups for unrelated processes all the time. Every cgroup a test makes
#: (directly, or through the runtimes, podman and containerd) has one of these in its
#: path.
CGROUP_MARKERS = ("skiff", "libpod")

#: Mounts that tools make once per boot and keep on purpose: iproute2 bind-mounts
#: /run/netns onto itself the first time any network namespace is named.
PERSISTENT_MOUNTS = frozenset({"/run/netns", "/var/run/netns"})


def _mounts() -> frozenset[str]:
    out = set()
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split(" ")
        sep = fields.index("-")
        if fields[4] in PERSISTENT_MOUNTS:
            continue
        out.add(f"{fields[4]} ({fields[sep + 1]} {fields[sep + 2]})")
    return frozenset(out)


def _netns() -> frozenset[str]:
    try:
        return frozenset(os.listdir("/run/netns"))
    except FileNotFoundError:
        return frozenset()


def _links() -> frozenset[str]:
    return frozenset(os.listdir("/sys/class/net"))


def _cgroups() -> frozenset[str]:
    found: set[str] = set()
    if not CGROUP_ROOT.is_dir():
        return frozenset()
    for hierarchy in CGROUP_ROOT.iterdir():
        if not hierarchy.is_dir() or hierarchy.is_symlink():
            continue
        stack = [(hierarchy, 0)]
        while stack:
            path, depth = stack.pop()
            if depth >= CGROUP_DEPTH:
                continue
            try:
                children = [e for e in os.scandir(path) if e.is_dir(follow_symlinks=False)]
            except OSError:
                continue
            for child in children:
                if any(m in child.path for m in CGROUP_MARKERS):
                    found.add(child.path)
                stack.append((Path(child.path), depth + 1))
    return frozenset(found)


def _stat(pid: str) -> tuple[int, int] | None:
    """(parent pid, start time in clock ticks) of a process, None when it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    after = raw[raw.rindex(")") + 2 :].split(" ")
    return int(after[1]), int(after[19])


def _cmdline(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    return raw.replace(b"\0", b" ").decode(errors="replace").strip()


def _processes(ancestor: int) -> dict[int, tuple[int, str]]:
    """Live processes descending from ``ancestor`` or naming skiff, with their start
    times (so a recycled pid is not mistaken for an old process) and command lines."""
    table: dict[int, tuple[int, int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = _stat(entry)
            if stat is not None:
                table[int(entry)] = stat
    out: dict[int, tuple[int, str]] = {}
    for pid, (_ppid, start) in table.items():
        if pid == ancestor:
            continue
        cmd = _cmdline(pid)
        walk, descends = pid, False
        while walk > 1 and walk in table:
            walk = table[walk][0]
            if walk == ancestor:
                descends = True
                break
        if descends or "skiff" in cmd:
            out[pid] = (start, cmd)
    return out


@dataclass(frozen=True)
class Snapshot:
    mounts: frozenset[str]
    netns: frozenset[str]
    links: frozenset[str]
    cgroups: frozenset[str]
    processes: dict[int, tuple[int, str]]

    @classmethod
    def take(cls, ancestor: int | None = None) -> Snapshot:
        return cls(
            mounts=_mounts(),
            netns=_netns(),
            links=_links(),
            cgroups=_cgroups(),
            processes=_processes(ancestor or os.getpid()),
        )


def leaks(before: Snapshot, after: Snapshot) -> dict[str, list[str]]:
    """What ``after`` holds that ``before`` did not, by kind; empty when nothing leaked."""
    found: dict[str, list[str]] = {}
    for kind in ("mounts", "netns", "links", "cgroups"):
        new = sorted(getattr(after, kind) - getattr(before, kind))
        if new:
            found[kind] = new
    procs = [
        f"{pid}: {cmd or '?'}"
        for pid, (start, cmd) in sorted(after.processes.items())
        if before.processes.get(pid, (None,))[0] != start
    ]
    if procs:
        found["processes"] = procs
    return found


def describe(found: dict[str, list[str]]) -> str:
    lines = ["the tests left behind:"]
    for kind, items in found.items():
        lines.append(f"  {kind}:")
        lines.extend(f"    {item}" for item in items[:20])
        if len(items) > 20:
            lines.append(f"    ... and {len(items) - 20} more")
    return "\n".join(lines)
