"""create + start + wait + remove of `true` through the Engine API, against skiffd and
against Debian's dockerd (own containerd), alternated in one run: once through
docker-py's low-level API (as users call it), once through a bare HTTP/1.1 client
on one kept-alive unix-socket connection (the daemons' own share, without
docker-py's ~1-2 ms of client work per request).
Goal (informational): under 10 ms per container on skiffd (docker-py).
"""

from __future__ import annotations

import argparse
import http.client
import json
import socket
from collections.abc import Callable
from typing import Any

import docker

import harness
from _client_floor import stand_in
from _engine_bench import engines

#: Spoken by both (dockerd 20.10 tops out at 1.41).
API = "/v1.41"


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


class _UnixHTTP(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("localhost")
        self.unix_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(self.unix_path)
        self.sock = sock


def bare_cycle(socket_path: str) -> Callable[[], None]:
    """The same four calls as plain HTTP requests on one connection."""
    conn = _UnixHTTP(socket_path)
    headers = {"Content-Type": "application/json"}
    create = json.dumps(
        {"Image": "busybox", "Cmd": ["true"], "HostConfig": {"NetworkMode": "none"}}
    )

    def call(method: str, path: str, body: str | None, expect: int) -> bytes:
        conn.request(method, API + path, body=body, headers=headers)
        r = conn.getresponse()
        data = r.read()
        if r.status != expect:
            raise RuntimeError(f"{method} {path}: {r.status} {data[:200]!r}")
        return data

    def once() -> None:
        cid = json.loads(call("POST", "/containers/create", create, 201))["Id"]
        call("POST", f"/containers/{cid}/start", None, 204)
        status = json.loads(call("POST", f"/containers/{cid}/wait", None, 200))["StatusCode"]
        call("DELETE", f"/containers/{cid}", None, 204)
        if status != 0:
            raise RuntimeError(f"true exited {status}")

    once.__name__ = "bare HTTP create+start+wait+remove"
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
        bare = harness.alternate_many(
            {
                "skiffd bare": bare_cycle(str(e.skiffd.socket)),
                "dockerd bare": bare_cycle(str(e.dockerd.socket)),
            },
            rounds=opts.rounds,
            warmup=3,
        )
    # docker-py's own share: the same cycle against a server that answers at once.
    with stand_in() as host:
        floor_client = docker.APIClient(base_url=host)
        floor = harness.measure(cycle(floor_client), rounds=opts.rounds, warmup=3).median
        floor_client.close()
    print(f"  docker-py alone (a stand-in server answering at once): {floor * 1e3:.2f} ms")
    mine, anchor = stats["skiffd"].median, stats["dockerd"].median
    harness.goal("create + start + wait + remove under 10 ms on skiffd", mine < 0.010)
    return harness.result(
        bench="api-run",
        ours=mine,
        anchor="dockerd 20.10 through docker-py (create, start, wait, remove of true)",
        anchor_value=anchor,
        bare_ours=bare["skiffd bare"].median,
        bare_dockerd=bare["dockerd bare"].median,
        docker_py_alone=floor,
    )
