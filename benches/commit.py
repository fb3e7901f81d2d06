"""Commit: the diff + compress + hash of a container's upper dir of 20,000 small files
into a layer, by Skiff vs `tar -czf` + `sha256sum` of the same dir.
(`docker commit` took 1.60 s for this on this machine; running dockerd here is a
later issue's bench.) Goal (informational): at least 3x faster than the tools.
"""

from __future__ import annotations

import argparse
import itertools
import subprocess
from pathlib import Path
from typing import Any

import harness
from _image_inputs import small_files

REPO = Path(__file__).resolve().parents[1]
PY = str(REPO / ".venv" / "bin" / "python")


def main(args: list[str]) -> dict[str, Any]:
    p = argparse.ArgumentParser(prog="benches/run commit", description=__doc__)
    p.add_argument("--rounds", type=harness.count_arg(1), default=7)
    p.add_argument(
        "--level", type=int, default=None, help="gzip level for Skiff (default 6, as tar's gzip)"
    )
    opts = p.parse_args(args)
    n = itertools.count()
    with harness.workdir("skiff-bench-commit") as base:
        upper = small_files(base / "upper")
        out = base / "out"
        out.mkdir()

        def ours() -> None:
            level = "None" if opts.level is None else str(opts.level)
            code = f"from skiff import _native; _native.diff_upper({str(upper)!r}, {str(out / f'c{next(n)}.tgz')!r}, level={level})"
            subprocess.run([PY, "-c", code], check=True)

        def tools() -> None:
            target = out / f"t{next(n)}.tgz"
            subprocess.run(
                ["bash", "-c", f"tar -czf {target} -C {upper} . && sha256sum {target} >/dev/null"],
                check=True,
            )

        ours.__qualname__ = "skiff diff_upper (tar+gzip+sha256 in one pass)"
        tools.__qualname__ = "tar -czf + sha256sum"
        a, b = harness.alternate(
            ours, tools, rounds=opts.rounds, warmup=1, labels=("skiff", "tar+sha256sum")
        )
    harness.goal("commit at least 3x faster than tar -czf + sha256sum", a.median * 3 <= b.median)
    harness.goal(
        "commit at least 3x faster than docker commit (1.60 s, BENCHMARKS.md)", a.median * 3 <= 1.60
    )
    return harness.result(
        bench="commit",
        ours=a.median,
        anchor="tar -czf + sha256sum",
        anchor_value=b.median,
        files=20_000,
        rounds=opts.rounds,
        docker_commit_reference_s=1.60,
    )
