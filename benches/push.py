"""Push the big image to an empty local registry: Skiff vs docker push, podman push.

Each run pushes to a fresh registry (Debian's docker-registry, no auth, 127.0.0.1, a
new port and storage, started and stopped untimed), so no layer is already there.
The stores are prepared once, untimed: Skiff's by loading the OCI layout; podman's
and docker's (a dockerd of our own) by pulling from a first registry. Each run only
tags the image for the new registry (untimed) and times the push.
Goal (informational): at least 2.5x faster than docker push and 2x faster than podman.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import _registry_bench as rb
import harness
from _image_inputs import big_image
from skiff.image import archive
from skiff.image.service import ImageService


def _skiff_store(root: Path, layout: Path) -> str:
    """Load the layout into a Skiff store; returns a name of the image there."""
    svc = ImageService(root)
    try:
        lines = archive.load(svc, layout)
    finally:
        svc.close()
    for line in lines:
        for prefix in ("Loaded image: ", "Loaded image ID: "):
            if line.startswith(prefix):
                return line[len(prefix) :].strip()
    raise harness.BenchError(f"archive.load gave no image: {lines}")


def _skiff_tag(root: Path, source: str, target: str) -> None:
    svc = ImageService(root)
    try:
        svc.tag(source, target)
    finally:
        svc.close()


def main(args: list[str]) -> dict[str, Any]:
    p = argparse.ArgumentParser(prog="benches/run push", description=__doc__)
    p.add_argument("--rounds", type=harness.count_arg(1), default=5)
    p.add_argument("--warmup", type=harness.count_arg(0), default=1)
    p.add_argument("--no-docker", action="store_true", help="skip the docker anchor")
    opts = p.parse_args(args)
    harness.need_tool("podman")
    names = rb.Counter()
    with harness.workdir("skiff-bench-push") as base:
        containerd: rb.Containerd | None = None
        dockerd: rb.Dockerd | None = None
        short = rb.short_dir()
        try:
            rb.docker_env(base)
            print("building the inputs (untimed) ...", flush=True)
            layers, layout = big_image(base / "in")
            with rb.registry(base / "registry0") as reg0:
                rb.seed(layout, reg0.host)
                ref0 = f"{reg0.host}/{rb.REF_PATH}"
                print(f"preparing the stores from {ref0} (untimed) ...", flush=True)
                skiff_root = base / "skiff"
                skiff_src = _skiff_store(skiff_root, layout)
                podman = rb.podman_argv(base / "podman", short)
                rb.run_quiet(
                    [*podman, "pull", "--quiet", "--tls-verify=false", ref0], "podman pull"
                )

                docker_skip: str | None = "--no-docker" if opts.no_docker else None
                if docker_skip is None:
                    try:
                        for tool in ("dockerd", "docker", "containerd"):
                            harness.need_tool(tool)
                        containerd = rb.Containerd(base / "containerd")
                        containerd.start()
                        # 127.0.0.0/8 is an insecure registry by default for dockerd.
                        dockerd = rb.Dockerd(base / "docker", containerd, [])
                        dockerd.start()
                        pids = (
                            f"containerd pid {containerd.proc.pid}, dockerd pid {dockerd.proc.pid}"  # type: ignore[union-attr]
                        )
                        print(pids, flush=True)
                        rb.run_quiet(dockerd.cli("pull", "--quiet", ref0), "docker pull")
                    except harness.BenchError as e:
                        docker_skip = str(e)
                        print(f"docker anchor skipped: {e}", flush=True)

            registries = base / "registries"
            registries.mkdir()

            def fresh_registry(tag: Callable[[str], object]) -> tuple[str, Callable[[], None]]:
                """A new empty registry and the image tagged for it (untimed); returns
                the reference and what checks the push went through and stops the
                registry (untimed)."""
                stack = contextlib.ExitStack()
                reg = stack.enter_context(rb.registry(registries / names.next("r")))
                ref = f"{reg.host}/{rb.REF_PATH}"
                with stack.pop_all() as undo:
                    tag(ref)
                    stack = undo.pop_all()

                def stop() -> None:
                    with stack:
                        rb.verify_pushed(reg.host, len(layers))

                return ref, stop

            def ours() -> tuple[list[str], Any]:
                ref, stop = fresh_registry(lambda ref: _skiff_tag(skiff_root, skiff_src, ref))
                code = (
                    "from pathlib import Path; from skiff.image.service import ImageService;"
                    " from skiff.registry.push import push;"
                    f" push(ImageService(Path({str(skiff_root)!r})), {ref!r})"
                )
                return [rb.PY, "-c", code], stop

            def podman_push() -> tuple[list[str], Any]:
                ref, stop = fresh_registry(
                    lambda ref: rb.run_quiet([*podman, "tag", ref0, ref], "podman tag")
                )
                return [*podman, "push", "--quiet", "--tls-verify=false", ref], stop

            def docker_push() -> tuple[list[str], Any]:
                assert dockerd is not None
                ref, stop = fresh_registry(
                    lambda ref: rb.run_quiet(dockerd.cli("tag", ref0, ref), "docker tag")
                )
                return dockerd.cli("push", "--quiet", ref), stop

            sides: dict[str, rb.Prepare] = {"skiff": ours}
            if docker_skip is None:
                sides["docker"] = docker_push
            sides["podman"] = podman_push
            stats = rb.alternate_prepared(sides, rounds=opts.rounds, warmup=opts.warmup)
        finally:
            if dockerd is not None:
                dockerd.stop()
            if containerd is not None:
                containerd.stop()
            rb.unmount_under(base)
            rb.remove_tree(short)
    s = stats["skiff"].median
    podman_s = stats["podman"].median
    docker_s = stats["docker"].median if "docker" in stats else None
    if docker_s is not None:
        harness.goal("push at least 2.5x faster than docker push", s * 2.5 <= docker_s)
    harness.goal("push at least 2x faster than podman push", s * 2 <= podman_s)
    anchor, anchor_s = (
        ("docker push", docker_s) if docker_s is not None else ("podman push", podman_s)
    )
    return harness.result(
        bench="push",
        ours=s,
        anchor=anchor,
        anchor_value=anchor_s,
        docker_s=docker_s,
        ratio_docker=harness.ratio(s, docker_s) if docker_s is not None else None,
        docker_skipped=docker_skip,
        podman_s=podman_s,
        ratio_podman=harness.ratio(s, podman_s),
        rounds=opts.rounds,
        python=sys.version.split()[0],
    )
