"""OCI runtime start: `skiff-runtime run` of /bin/true vs crun and runc, same bundle.

Three figures, each alternated across the runtimes after a warm-up: `run` with a new
network namespace, `run` in the host's network namespace, and create + start +
delete --force. Also the peak RSS of each runtime process during `run`.
Goal (informational): median start at most 0.8x crun's and at most 0.4x runc's.

On a hybrid cgroup host crun needs the hugetlb controller mounted as a v1
hierarchy: the benchmark mounts it for the run if it is missing, and unmounts it after.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import harness

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from skiff.runtime.binary import find_runtime  # noqa: E402
from skiff.runtime.bundle import write_bundle  # noqa: E402
from skiff.runtime.spec import default_config  # noqa: E402
from tests.support.images import build_busybox_tar  # noqa: E402

_ids = itertools.count()


def parse(args: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="benches/run runtime-start", description=__doc__)
    p.add_argument("--rounds", type=harness.count_arg(1), default=30)
    p.add_argument("--warmup", type=harness.count_arg(0), default=3)
    return p.parse_args(args)


@contextlib.contextmanager
def hugetlb_for_crun() -> Iterator[None]:
    """crun refuses a hybrid host unless hugetlb is a mounted v1 hierarchy."""
    target = Path("/sys/fs/cgroup/hugetlb")
    hybrid = Path("/sys/fs/cgroup/unified").is_dir() and not Path("/sys/fs/cgroup/cgroup.controllers").exists()
    mounted = False
    if hybrid and not os.path.ismount(target):
        target.mkdir(exist_ok=True)
        subprocess.run(["mount", "-t", "cgroup", "-o", "hugetlb", "hugetlb", str(target)], check=True)
        mounted = True
    try:
        yield
    finally:
        if mounted:
            subprocess.run(["umount", str(target)], check=False)
            with contextlib.suppress(OSError):
                target.rmdir()


def make_bundle(base: Path, name: str, tar: Path, network: bool) -> Path:
    bundle = base / name
    (bundle / "rootfs").mkdir(parents=True)
    subprocess.run(["tar", "-xf", str(tar), "-C", str(bundle / "rootfs")], check=True)
    write_bundle(bundle, default_config(["/bin/true"], network=network))
    return bundle


def runner(binary: str, root: Path, bundle: Path) -> Callable[[], None]:
    def run() -> None:
        cid = f"bench{next(_ids)}"
        proc = subprocess.run(
            [binary, "--root", str(root), "run", "--bundle", str(bundle), cid],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        if proc.returncode != 0:
            raise harness.BenchError(f"{binary} run failed: {proc.stderr.decode(errors='replace')[-400:]}")

    run.__qualname__ = f"{Path(binary).name} run"
    return run


def lifecycle(binary: str, root: Path, bundle: Path) -> Callable[[], None]:
    def cycle() -> None:
        cid = f"bench{next(_ids)}"
        base = [binary, "--root", str(root)]
        for args in (["create", "--bundle", str(bundle), cid], ["start", cid], ["delete", "--force", cid]):
            proc = subprocess.run([*base, *args], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            if proc.returncode != 0:
                raise harness.BenchError(f"{binary} {args[0]} failed: {proc.stderr.decode(errors='replace')[-400:]}")

    cycle.__qualname__ = f"{Path(binary).name} create+start+delete"
    return cycle


def peak_rss_kib(binary: str, root: Path, bundle: Path, runs: int = 5) -> float:
    """Median of the runtime process's peak RSS (ru_maxrss of wait4) over `run`s."""
    values = []
    for _ in range(runs):
        cid = f"bench{next(_ids)}"
        proc = subprocess.Popen(
            [binary, "--root", str(root), "run", "--bundle", str(bundle), cid],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _, _, usage = os.wait4(proc.pid, 0)
        proc.returncode = 0
        values.append(usage.ru_maxrss)
    values.sort()
    return float(values[len(values) // 2])


def main(args: list[str]) -> dict[str, Any]:
    opts = parse(args)
    if os.geteuid() != 0:
        raise harness.BenchError("runtime-start needs root")
    binaries = {
        "skiff-runtime": str(find_runtime()),
        "crun": harness.need_tool("crun"),
        "runc": harness.need_tool("runc"),
    }
    with harness.workdir("skiff-bench-rt") as base, hugetlb_for_crun():
        tar = build_busybox_tar(base / "busybox.tar")
        roots = {name: base / f"root-{name}" for name in binaries}
        results: dict[str, dict[str, harness.Stats]] = {}
        bundles = {}
        for network in (True, False):
            label = "netns" if network else "hostnet"
            bundle = make_bundle(base, f"bundle-{label}", tar, network)
            bundles[label] = bundle
            print(f"run /bin/true ({'new network namespace' if network else 'host network'}):")
            results[label] = harness.alternate_many(
                {name: runner(b, roots[name], bundle) for name, b in binaries.items()},
                rounds=opts.rounds,
                warmup=opts.warmup,
            )
        print("create + start + delete --force:")
        results["lifecycle"] = harness.alternate_many(
            {name: lifecycle(b, roots[name], bundles["netns"]) for name, b in binaries.items()},
            rounds=max(5, opts.rounds // 2),
            warmup=opts.warmup,
        )
        rss = {name: peak_rss_kib(b, roots[name], bundles["netns"]) for name, b in binaries.items()}
        print("peak RSS of the runtime process during run: " + ", ".join(f"{n} {v:.0f} KiB" for n, v in rss.items()))

    ours = results["netns"]["skiff-runtime"].median
    crun = results["netns"]["crun"].median
    runc = results["netns"]["runc"].median
    harness.goal("median start at most 0.8x crun's", ours <= 0.8 * crun)
    harness.goal("median start at most 0.4x runc's", ours <= 0.4 * runc)
    extra: dict[str, Any] = {"rounds": opts.rounds}
    for label, stats in results.items():
        for name, st in stats.items():
            key = name.replace("-", "_")
            extra[f"{label}_{key}_s"] = st.median
    extra["ratio_runc"] = harness.ratio(ours, runc)
    extra["ratio_hostnet_crun"] = harness.ratio(results["hostnet"]["skiff-runtime"].median, results["hostnet"]["crun"].median)
    extra["ratio_lifecycle_crun"] = harness.ratio(results["lifecycle"]["skiff-runtime"].median, results["lifecycle"]["crun"].median)
    for name, v in rss.items():
        extra[f"rss_kib_{name.replace('-', '_')}"] = v
    return harness.result(bench="runtime-start", ours=ours, anchor="crun run", anchor_value=crun, **extra)
