"""Shared benchmark harness: alternation runner, statistics, input files, result line.

Method (see BENCHMARKS.md): warm up, then alternate ours and the anchor (A B A B ...),
quote min / median / max of each side and the ratio of medians (ours / anchor; below 1
means Skiff is faster). Every benchmark ends with exactly one JSON line on stdout.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO, TypeAlias

#: A thing to time: an argv list (run as a whole process) or an in-process callable.
Cmd: TypeAlias = Sequence[str] | Callable[[], object]

MiB = 1 << 20
GiB = 1 << 30

#: Where input files go: on the real disk (not a tmpfs), fresh per run.
BENCH_ROOT = Path("/var/tmp")


class BenchError(Exception):
    """A benchmark cannot go on (a command failed, a result is wrong, a tool is missing)."""


# --------------------------------------------------------------------------- statistics


@dataclass(frozen=True)
class Stats:
    """Samples of one side of a comparison, in seconds (or in ``unit``)."""

    samples: tuple[float, ...]
    unit: str = "s"

    def __post_init__(self) -> None:
        if not self.samples:
            raise ValueError("Stats needs at least one sample")

    @classmethod
    def from_ns(cls, samples_ns: Sequence[int]) -> Stats:
        """Build from perf_counter_ns differences."""
        return cls(tuple(ns / 1e9 for ns in samples_ns))

    @property
    def min(self) -> float:
        return min(self.samples)

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def max(self) -> float:
        return max(self.samples)

    @property
    def n(self) -> int:
        return len(self.samples)

    def describe(self) -> str:
        """One human line: min / median / max (n)."""
        f = fmt_seconds if self.unit == "s" else (lambda v: f"{v:.4g} {self.unit}")
        return f"min {f(self.min)}  median {f(self.median)}  max {f(self.max)}  (n={self.n})"


def ratio(ours: float, anchor: float) -> float | None:
    """ours / anchor, or None when the anchor figure is zero or not finite."""
    if anchor == 0 or not math.isfinite(anchor) or not math.isfinite(ours):
        return None
    return ours / anchor


def throughput(nbytes: int, seconds: float, scale: float = 1e6) -> float:
    """Bytes per second divided by ``scale`` (1e6: MB/s, 1e9: GB/s); inf for 0 s."""
    return math.inf if seconds <= 0 else nbytes / seconds / scale


def fmt_seconds(s: float) -> str:
    """A duration with a unit readable at a glance (s, ms or µs)."""
    if s >= 1:
        return f"{s:.3f} s"
    if s >= 1e-3:
        return f"{s * 1e3:.2f} ms"
    return f"{s * 1e6:.1f} µs"


# --------------------------------------------------------------------------- running


def describe_cmd(cmd: Cmd) -> str:
    """A short printable name for an argv list or a callable."""
    if isinstance(cmd, functools.partial):
        args = [repr(a) for a in cmd.args] + [f"{k}={v!r}" for k, v in cmd.keywords.items()]
        return f"{describe_cmd(cmd.func)}({', '.join(args)})"
    if callable(cmd):
        name = getattr(cmd, "__qualname__", None) or getattr(cmd, "__name__", None)
        mod = getattr(cmd, "__module__", None)
        if not name:
            return repr(cmd)
        return f"{mod}.{name}" if mod and mod not in ("__main__", "builtins") else name
    return shlex.join(cmd)


def time_once(cmd: Cmd) -> int:
    """Run ``cmd`` once and return its wall time in ns; raise BenchError if it fails.

    An argv list runs as a whole process with stdin/stdout/stderr on /dev/null and must
    exit 0; a callable runs in this process and must not raise.
    """
    if callable(cmd):
        t0 = time.perf_counter_ns()
        try:
            cmd()
        except Exception as e:
            raise BenchError(f"{describe_cmd(cmd)} raised {type(e).__name__}: {e}") from e
        return time.perf_counter_ns() - t0
    argv = list(cmd)
    t0 = time.perf_counter_ns()
    try:
        rc = subprocess.run(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=False,
        ).returncode
    except OSError as e:
        raise BenchError(f"cannot run {describe_cmd(argv)}: {e}") from e
    dt = time.perf_counter_ns() - t0
    if rc != 0:
        raise BenchError(
            f"command failed (exit {rc}); run it by hand to see why: {shlex.join(argv)}"
        )
    return dt


def measure(cmd: Cmd, *, rounds: int = 5, warmup: int = 1) -> Stats:
    """Time one side alone: ``warmup`` untimed runs, then ``rounds`` timed runs."""
    if rounds < 1:
        raise ValueError("rounds must be >= 1")
    for _ in range(warmup):
        time_once(cmd)
    return Stats.from_ns([time_once(cmd) for _ in range(rounds)])


def alternate_many(
    cmds: dict[str, Cmd],
    *,
    rounds: int = 5,
    warmup: int = 1,
    out: TextIO | None = None,
) -> dict[str, Stats]:
    """Warm up every side, then time ``rounds`` rounds of A B C ... in turn; print a
    summary. The first entry is ours; ratios are printed against each other side."""
    if rounds < 1:
        raise ValueError("rounds must be >= 1")
    out = out if out is not None else sys.stdout
    width = max(len(label) for label in cmds)
    for label, cmd in cmds.items():
        print(f"  {label:<{width}}  {describe_cmd(cmd)}", file=out)
    for _ in range(warmup):
        for cmd in cmds.values():
            time_once(cmd)
    samples: dict[str, list[int]] = {label: [] for label in cmds}
    for _ in range(rounds):
        for label, cmd in cmds.items():
            samples[label].append(time_once(cmd))
    stats = {label: Stats.from_ns(ns) for label, ns in samples.items()}
    for label, st in stats.items():
        print(f"  {label:<{width}}  {st.describe()}", file=out)
    labels = list(cmds)
    for other in labels[1:]:
        r = ratio(stats[labels[0]].median, stats[other].median)
        shown = "n/a" if r is None else f"{r:.3f}"
        print(f"  ratio of medians {labels[0]}/{other} = {shown}", file=out, flush=True)
    return stats


def alternate(
    ours: Cmd,
    anchor: Cmd,
    *,
    rounds: int = 5,
    warmup: int = 1,
    labels: tuple[str, str] = ("ours", "anchor"),
    out: TextIO | None = None,
) -> tuple[Stats, Stats]:
    """Warm up both sides, then time ``rounds`` alternations A B A B ...; print a summary.

    Returns (ours, anchor) Stats in seconds. Any failing run aborts with BenchError.
    """
    stats = alternate_many(
        {labels[0]: ours, labels[1]: anchor}, rounds=rounds, warmup=warmup, out=out
    )
    return stats[labels[0]], stats[labels[1]]


# --------------------------------------------------------------------------- inputs


@contextlib.contextmanager
def workdir(name: str = "skiff-bench", root: Path | None = None) -> Iterator[Path]:
    """A fresh directory ``<root>/<name>-<pid>-XXXX``, removed on exit (also on error/^C)."""
    base = root if root is not None else BENCH_ROOT
    path = Path(tempfile.mkdtemp(prefix=f"{name}-{os.getpid()}-", dir=base))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def random_file(path: Path, size: int, chunk: int = 16 * MiB) -> Path:
    """Write ``size`` bytes of fresh /dev/urandom content to ``path`` (untimed input)."""
    left = size
    with open("/dev/urandom", "rb", buffering=0) as src, open(path, "wb") as dst:
        while left > 0:
            block = src.read(min(chunk, left))
            if not block:
                raise BenchError("/dev/urandom returned no data")
            dst.write(block)
            left -= len(block)
    return path


def warm_cache(path: Path, chunk: int = MiB) -> int:
    """Read ``path`` once so both sides then read it from the page cache; returns its size."""
    buf = bytearray(chunk)
    view = memoryview(buf)
    total = 0
    with open(path, "rb", buffering=0) as f:
        while n := f.readinto(view):
            total += n
    return total


def need_tool(name: str) -> str:
    """Full path of an anchor tool on PATH, or BenchError naming what is missing."""
    found = shutil.which(name)
    if found is None:
        raise BenchError(f"anchor tool {name!r} not found on PATH")
    return found


def count_arg(minimum: int) -> Callable[[str], int]:
    """An argparse ``type`` for an int of at least ``minimum`` (rounds, sizes, ...)."""

    def parse(text: str) -> int:
        value = int(text)
        if value < minimum:
            raise ValueError(f"must be >= {minimum}")
        return value

    parse.__name__ = f"integer >= {minimum}"
    return parse


# --------------------------------------------------------------------------- result line


def _tidy(v: Any) -> Any:
    """Round floats to 6 significant digits; non-finite floats become null (valid JSON)."""
    if isinstance(v, float):
        return float(f"{v:.6g}") if math.isfinite(v) else None
    return v


def result(
    *,
    bench: str,
    ours: float,
    anchor: str,
    anchor_value: float,
    unit: str = "s",
    **extra: Any,
) -> dict[str, Any]:
    """The result record: medians of both sides, what the anchor was, and ours/anchor."""
    rec: dict[str, Any] = {
        "bench": bench,
        "ours": ours,
        "anchor": anchor,
        "anchor_value": anchor_value,
        "unit": unit,
        "ratio": ratio(ours, anchor_value),
    }
    for key, value in extra.items():
        if key in rec:
            raise ValueError(f"extra key {key!r} clashes with a fixed key")
        rec[key] = value
    return {k: _tidy(v) for k, v in rec.items()}


def result_line(rec: dict[str, Any]) -> str:
    """The record as one compact JSON line (no newline inside)."""
    return json.dumps(rec, separators=(", ", ": "), allow_nan=False)


def emit(rec: dict[str, Any]) -> None:
    """Print the result line; it must be the last line a benchmark writes on stdout."""
    sys.stdout.flush()
    print(result_line(rec), flush=True)


def goal(text: str, met: bool) -> None:
    """Print an informational goal line; timing never fails a benchmark."""
    print(f"goal: {text}: {'met' if met else 'not met'}", flush=True)


# --------------------------------------------------------------------------- cgroups

#: The cgroup parent of every container a benchmark starts (whatever the runtime or
#: engine), removed at its end with :func:`remove_cgroup_parent`.
CGROUP_PARENT = f"skiff-bench-{os.getpid()}"


def remove_cgroup_parent(name: str, timeout: float = 5.0) -> None:
    """rmdir the cgroup parent in every v1 hierarchy and in v2, retrying while the
    kernel still holds a just-emptied child (a cgroup goes away asynchronously)."""
    root = Path("/sys/fs/cgroup")
    deadline = time.monotonic() + timeout
    for path in [root / name, *(h / name for h in root.iterdir() if h.is_dir())]:
        while path.is_dir():
            for sub in sorted((p for p in path.rglob("*") if p.is_dir()), reverse=True):
                with contextlib.suppress(OSError):
                    sub.rmdir()
            with contextlib.suppress(OSError):
                path.rmdir()
            if not path.is_dir() or time.monotonic() > deadline:
                break
            time.sleep(0.05)


@contextlib.contextmanager
def cgroup_parent() -> Iterator[str]:
    """:data:`CGROUP_PARENT` for the length of a block, removed after it."""
    try:
        yield CGROUP_PARENT
    finally:
        remove_cgroup_parent(CGROUP_PARENT)
