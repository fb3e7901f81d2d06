"""create + start + wait + remove of `true` through docker-py's low-level API, against
skiffd and against Debian's dockerd (own containerd), alternated in one run.
Goal (informational): under 10 ms per container on skiffd.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

import docker

import harness
from _engine_bench import engines


def cycle(client: docker.APIClient) -> Callable[[], None]:
    host_config = client.create_host_config(network_mode="none")

    def once() -> None:
        cid = client.create_container("busybox", ["true"], host_config=host_config)["Id"]
        client.start(cid)
        status = client.wait(cid)["StatusCode"]
        client.remove_container(cid)
        if status != 0:
            raise RuntimeError(f"true exited {status}")

    once.__name__ = "create+start+wait+remove"
    return once


def main(args: list[str]) -> dict[str, Any]:
    p = argparse.ArgumentParser(prog="benches/run api-run", description=__doc__)
    p.add_argument("--rounds", type=harness.count_arg(1), default=30)
    opts = p.parse_args(args)
    with engines("skiff-bench-api") as e:
        ours = docker.APIClient(base_url=e.skiffd.host)
        theirs = docker.APIClient(base_url=e.dockerd.host)
        stats = harness.alternate_many(
            {"skiffd": cycle(ours), "dockerd": cycle(theirs)}, rounds=opts.rounds, warmup=3
        )
        ours.close()
        theirs.close()
    mine, anchor = stats["skiffd"].median, stats["dockerd"].median
    harness.goal("create + start + wait + remove under 10 ms on skiffd", mine < 0.010)
    return harness.result(
        bench="api-run",
        ours=mine,
        anchor="dockerd 20.10 through docker-py (create, start, wait, remove of true)",
        anchor_value=anchor,
    )
