"""Pull the big image from a local registry: Skiff vs docker, podman, skopeo+umoci.

Skiff, docker pull, podman pull and skopeo copy + umoci unpack, each into fresh storage.

A registry (Debian's docker-registry, no auth, 127.0.0.1) holds the big image of
BENCHMARKS.md, pushed once untimed with its gzip layers as they are. Every timed pull
goes into fresh storage (a new directory per run; a fresh dockerd with a new data root
per docker run, started untimed); everything is removed only after all rounds.
Goal (informational): at least 3x faster than docker pull and podman pull.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from typing import Any

import _registry_bench as rb
import harness
from _image_inputs import big_image


def main(args: list[str]) -> dict[str, Any]:
    p = argparse.ArgumentParser(prog="benches/run pull", description=__doc__)
    p.add_argument("--rounds", type=harness.count_arg(1), default=5)
    p.add_argument("--warmup", type=harness.count_arg(0), default=1)
    p.add_argument("--no-docker", action="store_true", help="skip the docker anchor")
    opts = p.parse_args(args)
    podman = harness.need_tool("podman")
    skopeo = harness.need_tool("skopeo")
    umoci = harness.need_tool("umoci")
    del podman
    names = rb.Counter()
    with harness.workdir("skiff-bench-pull") as base:
        containerd: rb.Containerd | None = None
        short = rb.short_dir()
        try:
            rb.docker_env(base)
            print("building the inputs (untimed) ...", flush=True)
            _, layout = big_image(base / "in")
            with rb.registry(base / "registry") as reg:
                rb.seed(layout, reg.host)
                ref = f"{reg.host}/{rb.REF_PATH}"
                print(f"registry {reg.host} (pid {reg.proc.pid}) holds {ref}", flush=True)
                out = base / "out"
                out.mkdir()

                docker_skip: str | None = "--no-docker" if opts.no_docker else None
                if docker_skip is None:
                    try:
                        for tool in ("dockerd", "docker", "containerd"):
                            harness.need_tool(tool)
                        containerd = rb.Containerd(base / "containerd")
                        containerd.start()
                        print(f"containerd pid {containerd.proc.pid}", flush=True)  # type: ignore[union-attr]
                        probe = rb.Dockerd(out / "probe", containerd, [reg.host])
                        probe.start()
                        probe.stop()
                    except harness.BenchError as e:
                        docker_skip = str(e)
                        print(f"docker anchor skipped: {e}", flush=True)

                def ours() -> tuple[list[str], Any]:
                    d = out / names.next("skiff")
                    code = (
                        "from pathlib import Path; from skiff.image.service import ImageService;"
                        " from skiff.registry.pull import pull;"
                        f" pull(ImageService(Path({str(d)!r})), {ref!r})"
                    )
                    return [rb.PY, "-c", code], lambda: None

                def podman_pull() -> tuple[list[str], Any]:
                    d = out / names.next("podman")
                    argv = [*rb.podman_argv(d, short), "pull", "--quiet", "--tls-verify=false", ref]
                    return argv, lambda: rb.unmount_under(d)

                def skopeo_umoci() -> tuple[list[str], Any]:
                    d = out / names.next("umoci")
                    d.mkdir()
                    script = (
                        f"{shlex.quote(skopeo)} copy --quiet --src-tls-verify=false"
                        f" docker://{ref} oci:{d}/x:big"
                        f" && {shlex.quote(umoci)} unpack --image {d}/x:big {d}/bundle"
                    )
                    return ["bash", "-c", script], lambda: None

                def docker_pull() -> tuple[list[str], Any]:
                    assert containerd is not None
                    daemon = rb.Dockerd(out / names.next("docker"), containerd, [reg.host])
                    daemon.start()
                    return daemon.cli("pull", "--quiet", ref), daemon.stop

                sides: dict[str, rb.Prepare] = {"skiff": ours}
                if docker_skip is None:
                    sides["docker"] = docker_pull
                sides["podman"] = podman_pull
                sides["skopeo+umoci"] = skopeo_umoci
                stats = rb.alternate_prepared(sides, rounds=opts.rounds, warmup=opts.warmup)
        finally:
            if containerd is not None:
                containerd.stop()
            rb.unmount_under(base)
            rb.remove_tree(short)
    s = stats["skiff"].median
    podman_s = stats["podman"].median
    docker_s = stats["docker"].median if "docker" in stats else None
    if docker_s is not None:
        harness.goal("pull at least 3x faster than docker pull", s * 3 <= docker_s)
    harness.goal("pull at least 3x faster than podman pull", s * 3 <= podman_s)
    anchor, anchor_s = (
        ("docker pull", docker_s) if docker_s is not None else ("podman pull", podman_s)
    )
    su = stats["skopeo+umoci"].median
    return harness.result(
        bench="pull",
        ours=s,
        anchor=anchor,
        anchor_value=anchor_s,
        docker_s=docker_s,
        ratio_docker=harness.ratio(s, docker_s) if docker_s is not None else None,
        docker_skipped=docker_skip,
        podman_s=podman_s,
        ratio_podman=harness.ratio(s, podman_s),
        skopeo_umoci_s=su,
        ratio_skopeo_umoci=harness.ratio(s, su),
        rounds=opts.rounds,
        python=sys.version.split()[0],
    )
