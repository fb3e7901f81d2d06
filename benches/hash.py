"""sha256 of a 1 GiB file: skiff._native vs sha256sum (and hashlib); xxh3-128 throughput.

Whole processes are compared (``python -c 'skiff._native.sha256_file(...)'`` against
``sha256sum``), alternated after a warm-up, from the page cache. In-process figures
(sha256_file vs hashlib, xxh3_128_file, xxh3_128 over bytes in memory) are extra keys.
Goals (informational): sha256 at least as fast as sha256sum; xxh3 at 5 GB/s or more.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import subprocess
import sys
from pathlib import Path
from typing import Any

import harness
import skiff._native as native
from harness import MiB

OURS_SNIPPET = "import sys, skiff._native as n; n.sha256_file(sys.argv[1])"
XXH3_GOAL_GBPS = 5.0


def hashlib_sha256_file(path: str | Path, chunk: int = MiB) -> str:
    """sha256 with the standard library, reading 1 MiB at a time; ``sha256:<hex>``."""
    h = hashlib.sha256()
    buf = bytearray(chunk)
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as f:
        while n := f.readinto(view):
            h.update(view[:n])
    return "sha256:" + h.hexdigest()


def sha256sum_digest(tool: str, path: Path) -> str:
    """The anchor's digest, as ``sha256:<hex>``."""
    out = subprocess.run([tool, str(path)], capture_output=True, text=True, check=True).stdout
    return "sha256:" + out.split()[0]


def parse_args(args: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="benches/run hash", description=__doc__)
    p.add_argument(
        "--size-mib", type=harness.count_arg(1), default=1024, help="input size (default 1024)"
    )
    p.add_argument(
        "--rounds", type=harness.count_arg(1), default=5, help="timed rounds per side (default 5)"
    )
    p.add_argument(
        "--warmup", type=harness.count_arg(0), default=1, help="untimed warm-up runs (default 1)"
    )
    return p.parse_args(args)


def main(args: list[str]) -> dict[str, Any]:
    opts = parse_args(args)
    size = opts.size_mib * MiB
    rounds, warmup = opts.rounds, opts.warmup
    sha256sum = harness.need_tool("sha256sum")

    with harness.workdir("skiff-bench-hash") as tmp:
        path = tmp / "input.bin"
        print(f"input: {size / MiB:.0f} MiB from /dev/urandom at {path} (untimed)", flush=True)
        harness.random_file(path, size)
        harness.warm_cache(path)

        # Correctness first, untimed: all three must agree.
        ours_digest = native.sha256_file(str(path))
        digests = {
            "skiff._native.sha256_file": ours_digest,
            "sha256sum": sha256sum_digest(sha256sum, path),
            "hashlib": hashlib_sha256_file(path),
        }
        if len(set(digests.values())) != 1:
            raise harness.BenchError(f"sha256 digests disagree: {digests}")
        print(f"digests agree: {ours_digest}")

        print("sha256, whole process (from page cache):")
        proc_ours, proc_anchor = harness.alternate(
            [sys.executable, "-c", OURS_SNIPPET, str(path)],
            [sha256sum, str(path)],
            rounds=rounds,
            warmup=warmup,
            labels=("skiff", "sha256sum"),
        )

        print("sha256, in process (no interpreter start):")
        in_ours, in_hashlib = harness.alternate(
            functools.partial(native.sha256_file, str(path)),
            functools.partial(hashlib_sha256_file, str(path)),
            rounds=rounds,
            warmup=warmup,
            labels=("sha256_file", "hashlib"),
        )

        print("xxh3-128, in process:")
        xxh3_file = harness.measure(
            functools.partial(native.xxh3_128_file, str(path)), rounds=rounds, warmup=warmup
        )
        print(f"  xxh3_128_file  {xxh3_file.describe()}")
        data = path.read_bytes()
        try:
            xxh3_mem = harness.measure(
                functools.partial(native.xxh3_128, data), rounds=rounds, warmup=warmup
            )
        finally:
            del data
        print(f"  xxh3_128 (mem) {xxh3_mem.describe()}")

    def mbps(st: harness.Stats) -> float:
        return harness.throughput(size, st.median, 1e6)

    def gbps(st: harness.Stats) -> float:
        return harness.throughput(size, st.median, 1e9)

    print(
        f"throughput: skiff {mbps(proc_ours):.0f} MB/s (process), "
        f"{mbps(in_ours):.0f} MB/s (in process); sha256sum {mbps(proc_anchor):.0f} MB/s; "
        f"hashlib {mbps(in_hashlib):.0f} MB/s; xxh3 {gbps(xxh3_file):.2f} GB/s (file), "
        f"{gbps(xxh3_mem):.2f} GB/s (memory)"
    )
    harness.goal(
        "sha256 at least as fast as sha256sum (process medians)",
        proc_ours.median <= proc_anchor.median,
    )
    harness.goal(
        f"xxh3-128 at or above {XXH3_GOAL_GBPS:g} GB/s (xxh3_128_file)",
        gbps(xxh3_file) >= XXH3_GOAL_GBPS,
    )

    return harness.result(
        bench="hash",
        ours=proc_ours.median,
        anchor="sha256sum",
        anchor_value=proc_anchor.median,
        unit="s",
        bytes=size,
        rounds=rounds,
        ours_min=proc_ours.min,
        ours_max=proc_ours.max,
        anchor_min=proc_anchor.min,
        anchor_max=proc_anchor.max,
        ours_inproc_s=in_ours.median,
        hashlib_s=in_hashlib.median,
        ours_MBps=mbps(proc_ours),
        ours_inproc_MBps=mbps(in_ours),
        anchor_MBps=mbps(proc_anchor),
        hashlib_MBps=mbps(in_hashlib),
        xxh3_s=xxh3_file.median,
        xxh3_GBps=gbps(xxh3_file),
        xxh3_mem_s=xxh3_mem.median,
        xxh3_mem_GBps=gbps(xxh3_mem),
    )
