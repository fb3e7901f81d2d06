"""`docker run --rm --network none busybox true` with DOCKER_HOST on skiffd vs on
Debian's dockerd (own containerd), alternated in one run; also the docker CLI's own
round trip (`docker version`) against each, to see what the CLI itself costs.
Goal (informational): at least 5x faster on skiffd than on dockerd.
"""

from __future__ import annotations

import argparse
from typing import Any

import harness
from _engine_bench import engines


def main(args: list[str]) -> dict[str, Any]:
    p = argparse.ArgumentParser(prog="benches/run docker-run", description=__doc__)
    p.add_argument("--rounds", type=harness.count_arg(1), default=15)
    opts = p.parse_args(args)
    with engines("skiff-bench-run") as e:
        run = ("run", "--rm", "--network", "none", "busybox", "true")
        stats = harness.alternate_many(
            {
                "skiffd": e.skiffd.cli(*run),
                "dockerd": e.dockerd.cli(*run),
            },
            rounds=opts.rounds,
            warmup=2,
        )
        cli = harness.alternate_many(
            {
                "skiffd version": e.skiffd.cli("version"),
                "dockerd version": e.dockerd.cli("version"),
            },
            rounds=opts.rounds,
            warmup=1,
        )
    ours, theirs = stats["skiffd"].median, stats["dockerd"].median
    harness.goal("docker run --rm at least 5x faster on skiffd than on dockerd", ours * 5 <= theirs)
    return harness.result(
        bench="docker-run",
        ours=ours,
        anchor="dockerd 20.10 (docker run --rm --network none busybox true)",
        anchor_value=theirs,
        cli_round_trip_skiffd=cli["skiffd version"].median,
        cli_round_trip_dockerd=cli["dockerd version"].median,
    )
