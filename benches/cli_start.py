"""skiff CLI start-up vs the docker CLI, both against the same skiffd, alternated in one
run: `--version`, `ps` with no containers, and `run --rm busybox true`.
Goals (informational): skiff --version under 45 ms, skiff ps under 60 ms, skiff run
--rm busybox true under 60 ms. Also the interpreter's own floor (`python -c pass`).
"""

from __future__ import annotations

import argparse
import compileall
import os
import shutil
from typing import Any

import harness
from _engine_bench import CGROUP_PARENT, PY, REPO, Skiffd, busybox_tar


def skiff_argv() -> list[str]:
    """The installed entry point (as users run it), else the module."""
    entry = REPO / ".venv" / "bin" / "skiff"
    return [str(entry)] if entry.exists() else [PY, "-m", "skiff.cli"]


def main(args: list[str]) -> dict[str, Any]:
    p = argparse.ArgumentParser(prog="benches/run cli-start", description=__doc__)
    p.add_argument("--rounds", type=harness.count_arg(1), default=21)
    opts = p.parse_args(args)
    docker = harness.need_tool("docker")
    # As installed: bytecode written and used (a test environment may turn it off).
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    compileall.compile_dir(str(REPO / "python" / "skiff"), quiet=1)
    skiff = skiff_argv()
    with harness.workdir("skiff-bench-cli") as base:
        daemon = Skiffd(base / "sk")
        try:
            print("starting skiffd with busybox (untimed) ...", flush=True)
            daemon.start(busybox_tar(base))
            host = ["-H", daemon.host]
            floor = harness.measure([PY, "-c", "pass"], rounds=opts.rounds, warmup=2)
            print(f"  python -c pass  {floor.describe()}", flush=True)
            version = harness.alternate_many(
                {
                    "skiff --version": [*skiff, "--version"],
                    "docker --version": [docker, "--version"],
                },
                rounds=opts.rounds,
                warmup=2,
            )
            ps = harness.alternate_many(
                {"skiff ps": [*skiff, *host, "ps"], "docker ps": [docker, *host, "ps"]},
                rounds=opts.rounds,
                warmup=2,
            )
            run = ("run", "--rm", "busybox", "true")
            runs = harness.alternate_many(
                {"skiff run": [*skiff, *host, *run], "docker run": [docker, *host, *run]},
                rounds=opts.rounds,
                warmup=2,
            )
        finally:
            daemon.stop()
            shutil.rmtree(base / "sk", ignore_errors=True)
            harness.remove_cgroup_parent(CGROUP_PARENT)
    v, s, r = version["skiff --version"], ps["skiff ps"], runs["skiff run"]
    harness.goal("skiff --version under 45 ms", v.median < 0.045)
    harness.goal("skiff ps (no containers) under 60 ms", s.median < 0.060)
    harness.goal("skiff run --rm busybox true under 60 ms", r.median < 0.060)
    return harness.result(
        bench="cli-start",
        ours=s.median,
        anchor="docker ps (CLI 28) against the same skiffd",
        anchor_value=ps["docker ps"].median,
        version_ours=v.median,
        version_docker=version["docker --version"].median,
        run_ours=r.median,
        run_docker=runs["docker run"].median,
        python_floor=floor.median,
    )
