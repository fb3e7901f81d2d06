"""Density: 50 containers `sleep 300` started detached (`docker run -d`) from 1 and
from 4 parallel clients, and through the API (docker-py create + start) from 4
threads, on skiffd and on Debian's dockerd; then what the engine keeps
per running container (RSS and PSS of skiff-monitor vs containerd-shim, plus the
daemon's own growth). Each side starts into a freshly emptied daemon.
Goals (informational): 50 detached starts in under 0.5 s; at most 0.5 MiB RSS per
running container beyond the container's own processes.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import harness
from _client_floor import stand_in
from _engine_bench import Engines, engines, parent_of, pids_named, pss_kib, rss_kib

COUNT = 50


def start_many(cli: Any, clients: int) -> float:
    """Seconds to start COUNT detached containers from ``clients`` parallel clients."""
    argv = ["run", "-d", "--network", "none", "busybox", "sleep", "300"]

    def one(_: int) -> None:
        subprocess.run(cli(*argv), check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    t0 = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(one, range(COUNT)))
    return time.perf_counter() - t0


def start_many_api(host: str, clients: int, count: int = COUNT) -> float:
    """Like :func:`start_many`, through the API (docker-py, one client per thread):
    create + start of each container, without the docker CLI's process start-up."""
    import docker

    pool_clients = [docker.APIClient(base_url=host) for _ in range(clients)]
    host_config = pool_clients[0].create_host_config(network_mode="none")

    def one(i: int) -> None:
        c = pool_clients[i % clients]
        cid = c.create_container("busybox", ["sleep", "300"], host_config=host_config)["Id"]
        c.start(cid)

    t0 = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(one, range(count)))
    elapsed = time.perf_counter() - t0
    for c in pool_clients:
        c.close()
    return elapsed


def clear(cli: Any) -> None:
    ids = subprocess.run(cli("ps", "-aq"), capture_output=True, text=True, check=True).stdout
    if ids.split():
        subprocess.run(cli("rm", "-f", *ids.split()), check=True, stdout=subprocess.DEVNULL)


def init_pids(cli: Any) -> list[int]:
    """The init pids of the running containers."""
    ids = subprocess.run(cli("ps", "-q"), capture_output=True, text=True, check=True).stdout
    if not ids.split():
        return []
    out = subprocess.run(
        cli("inspect", "-f", "{{.State.Pid}}", *ids.split()),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [int(p) for p in out.split() if int(p) > 0]


def per_container_memory(e: Engines, ours: bool) -> tuple[float, float, float]:
    """(RSS KiB, PSS KiB, daemon RSS KiB) of the per-container helper processes."""
    if ours:
        # Each running container's init is its monitor's child (a monitor may
        # have been started ahead of need, with no container in its command line).
        pids = [m for m in (parent_of(p) for p in init_pids(e.skiffd.cli)) if m]
        daemon = e.skiffd.proc.pid if e.skiffd.proc else 0
    else:
        pids = pids_named("containerd-shim-runc-v2", str(e.dockerd.containerd.root))
        daemon = e.dockerd.proc.pid if e.dockerd.proc else 0
    if not pids:
        return 0.0, 0.0, float(rss_kib(daemon))
    rss = sum(rss_kib(p) for p in pids) / len(pids)
    pss = sum(pss_kib(p) for p in pids) / len(pids)
    return rss, pss, float(rss_kib(daemon))


def main(args: list[str]) -> dict[str, Any]:
    p = argparse.ArgumentParser(prog="benches/run density", description=__doc__)
    # Five: a round's time swings by a fifth on this shared machine, the same
    # build's (the CPU time of the same work too); an odd count keeps the median
    # one of the runs.
    p.add_argument("--rounds", type=harness.count_arg(1), default=5)
    opts = p.parse_args(args)
    times: dict[str, list[float]] = {}
    memory: dict[str, tuple[float, float, float]] = {}
    with engines("skiff-bench-density") as e:
        sides = {"skiffd": e.skiffd.cli, "dockerd": e.dockerd.cli}
        # Warm-up, untimed: each daemon's first containers (code paths run for
        # the first time, caches and pools filled).
        for label, cli in sides.items():
            host = e.skiffd.host if label == "skiffd" else e.dockerd.host
            start_many_api(host, 4, count=10)
            clear(cli)
        for _ in range(opts.rounds):
            for clients in (1, 4):
                for label, cli in sides.items():
                    base_rss = per_container_memory(e, label == "skiffd")[2]
                    t = start_many(cli, clients)
                    times.setdefault(f"{label} x{clients}", []).append(t)
                    rss, pss, daemon = per_container_memory(e, label == "skiffd")
                    memory[label] = (rss, pss, (daemon - base_rss) / COUNT)
                    print(
                        f"  {label:<8} {clients} client(s): {COUNT} starts in {t:.2f} s;"
                        f" per container {rss / 1024:.2f} MiB RSS, {pss / 1024:.2f} MiB PSS,"
                        f" daemon +{(daemon - base_rss) / COUNT / 1024:.2f} MiB",
                        flush=True,
                    )
                    clear(cli)
            for label, cli in sides.items():
                host = e.skiffd.host if label == "skiffd" else e.dockerd.host
                t = start_many_api(host, 4)
                times.setdefault(f"{label} api x4", []).append(t)
                print(f"  {label:<8} 4 API clients: {COUNT} starts in {t:.2f} s", flush=True)
                clear(cli)
    # The clients' own share: the same starts against a server that answers at once.
    with stand_in() as host:
        docker_cli = harness.need_tool("docker")
        for _ in range(opts.rounds):
            times.setdefault("clients alone x4", []).append(
                start_many(lambda *a: [docker_cli, "-H", host, *a], 4)
            )
            times.setdefault("clients alone api x4", []).append(start_many_api(host, 4))
    med = {k: statistics.median(v) for k, v in times.items()}
    for k, v in times.items():
        print(f"  {k:<22} " + harness.Stats(tuple(v)).describe())
    print(
        f"  the clients alone (a stand-in server answering at once): 4 CLI clients"
        f" {med['clients alone x4']:.2f} s, 4 API clients {med['clients alone api x4']:.2f} s"
    )
    ours4, theirs4 = med["skiffd x4"], med["dockerd x4"]
    rss, pss, daemon_growth = memory["skiffd"]
    harness.goal("50 detached starts (4 CLI clients) under 0.5 s", ours4 < 0.5)
    harness.goal("50 detached starts (4 API clients) under 0.5 s", med["skiffd api x4"] < 0.5)
    harness.goal("at most 0.5 MiB RSS per running container (monitor)", rss / 1024 <= 0.5)
    return harness.result(
        bench="density",
        ours=ours4,
        anchor="dockerd 20.10: 50 x docker run -d from 4 clients",
        anchor_value=theirs4,
        skiffd_1_client=med["skiffd x1"],
        dockerd_1_client=med["dockerd x1"],
        skiffd_4_api_clients=med["skiffd api x4"],
        dockerd_4_api_clients=med["dockerd api x4"],
        cli_clients_alone=med["clients alone x4"],
        api_clients_alone=med["clients alone api x4"],
        monitor_rss_mib=rss / 1024,
        monitor_pss_mib=pss / 1024,
        shim_rss_mib=memory["dockerd"][0] / 1024,
        shim_pss_mib=memory["dockerd"][1] / 1024,
        skiffd_growth_per_container_mib=daemon_growth / 1024,
    )
