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
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import harness

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.support.cgroups import remove_tree  # noqa: E402
from tests.support.images import build_busybox_tar  # noqa: E402

from skiff.runtime.binary import find_runtime  # noqa: E402
from skiff.runtime.bundle import write_bundle  # noqa: E402
from skiff.runtime.spec import default_config  # noqa: E402

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
    hybrid = (
        Path("/sys/fs/cgroup/unified").is_dir()
        and not Path("/sys/fs/cgroup/cgroup.controllers").exists()
    )
    mounted = False
    if hybrid and not os.path.ismount(target):
        target.mkdir(exist_ok=True)
        subprocess.run(
            ["mount", "-t", "cgroup", "-o", "hugetlb", "hugetlb", str(target)], check=True
        )
        mounted = True
    try:
        yield
    finally:
        if mounted:
            subprocess.run(["umount", str(target)], check=False)
            with contextlib.suppress(OSError):
                target.rmdir()


def make_bundle(
    base: Path, name: str, tar: Path, network: bool, args: tuple[str, ...] = ("/bin/true",)
) -> Path:
    bundle = base / name
    (bundle / "rootfs").mkdir(parents=True)
    subprocess.run(["tar", "-xf", str(tar), "-C", str(bundle / "rootfs")], check=True)
    # Under the benchmark's own cgroup parent (removed at the end), not each
    # runtime's default one, which would stay behind.
    cgroups = f"/{harness.CGROUP_PARENT}/{name}"
    write_bundle(bundle, default_config(list(args), network=network, cgroups_path=cgroups))
    return bundle


def monitor_memory_kib(base: Path, tar: Path, runtime: str, root: Path) -> tuple[float, float]:
    """(RSS, PSS) in KiB of skiff-monitor beside a running `sleep` container, read
    after it has settled (3 s)."""
    monitor = str(Path(runtime).with_name("skiff-monitor"))
    bundle = make_bundle(base, "bundle-monitor", tar, True, ("/bin/sleep", "60"))
    state = base / "monitor"
    state.mkdir()
    cid = f"bench{os.getpid()}-monitor"
    r, w = os.pipe()
    subprocess.run(
        [
            monitor,
            "--id",
            cid,
            "--bundle",
            str(bundle),
            "--runtime",
            runtime,
            "--runtime-root",
            str(root),
            "--log",
            str(state / "ctr.log"),
            "--exit-file",
            str(state / "exit.json"),
            "--socket",
            str(state / "attach.sock"),
            # It starts the container itself, as skiffd has it do (its builtin
            # runtime creates without an exec fifo: no outside `start`).
            "--start",
            "--sync-fd",
            str(w),
        ],
        pass_fds=(w,),
        check=True,
    )
    os.close(w)
    with os.fdopen(r, "rb") as f:
        info = json.loads(f.readline())
    if "error" in info:
        raise harness.BenchError(f"skiff-monitor: {info['error']}")
    pid = int(info["monitor_pid"])
    try:
        time.sleep(3)
        status = Path(f"/proc/{pid}/status").read_text()
        rss = float(next(ln.split()[1] for ln in status.splitlines() if ln.startswith("VmRSS:")))
        rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
        pss = float(next(ln.split()[1] for ln in rollup.splitlines() if ln.startswith("Pss:")))
    finally:
        subprocess.run([runtime, "--root", str(root), "delete", "--force", cid], check=False)
        deadline = time.monotonic() + 10
        while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
    return rss, pss


def runner(binary: str, root: Path, bundle: Path) -> Callable[[], None]:
    def run() -> None:
        cid = f"bench{os.getpid()}-{next(_ids)}"
        proc = subprocess.run(
            [binary, "--root", str(root), "run", "--bundle", str(bundle), cid],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        if proc.returncode != 0:
            raise harness.BenchError(
                f"{binary} run failed: {proc.stderr.decode(errors='replace')[-400:]}"
            )

    run.__qualname__ = f"{Path(binary).name} run"
    return run


def lifecycle(binary: str, root: Path, bundle: Path) -> Callable[[], None]:
    def cycle() -> None:
        cid = f"bench{os.getpid()}-{next(_ids)}"
        base = [binary, "--root", str(root)]
        for args in (
            ["create", "--bundle", str(bundle), cid],
            ["start", cid],
            ["delete", "--force", cid],
        ):
            # No pipes: the container's init inherits the runtime's stdio and lives on
            # after create, so a pipe would never see EOF.
            proc = subprocess.run(
                [*base, *args],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            if proc.returncode != 0:
                raise harness.BenchError(
                    f"{binary} {args[0]} {cid} failed (exit {proc.returncode})"
                )

    cycle.__qualname__ = f"{Path(binary).name} create+start+delete"
    return cycle


def peak_rss_kib(binary: str, root: Path, bundle: Path, runs: int = 5) -> float:
    """Median peak RSS of the runtime process during `run`, as GNU time reports it
    (wait4's ru_maxrss of a child forked from Python would count Python's pages)."""
    time_bin = harness.need_tool("time")
    values = []
    for _ in range(runs):
        cid = f"bench{os.getpid()}-{next(_ids)}"
        out = subprocess.run(
            [
                time_bin,
                "-f",
                "%M",
                binary,
                "--root",
                str(root),
                "run",
                "--bundle",
                str(bundle),
                cid,
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            check=True,
        )
        values.append(int(out.stderr.strip().splitlines()[-1]))
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
    with (
        harness.workdir("skiff-bench-rt") as base,
        hugetlb_for_crun(),
        harness.cgroup_parent(),
    ):
        tar = build_busybox_tar(base / "busybox.tar")
        roots = {name: base / f"root-{name}" for name in binaries}
        results: dict[str, dict[str, harness.Stats]] = {}
        bundles = {}
        ours_name = "skiff-runtime"
        for network in (True, False):
            label = "netns" if network else "hostnet"
            bundles[label] = make_bundle(base, f"bundle-{label}", tar, network)
        # Each anchor is alternated with us on its own (A B A B ...): a runtime's
        # teardown (a network namespace's above all) slows whatever starts next, so a
        # three-way rotation would charge runc's teardown to the side after it.
        for label, make in (("netns", runner), ("hostnet", runner), ("lifecycle", lifecycle)):
            bundle = bundles["hostnet" if label == "hostnet" else "netns"]
            results[label] = {}
            for anchor in ("crun", "runc"):
                print(f"{label}: {ours_name} vs {anchor}")
                a, b = harness.alternate(
                    make(binaries[ours_name], roots[ours_name], bundle),
                    make(binaries[anchor], roots[anchor], bundle),
                    rounds=opts.rounds if label != "lifecycle" else max(5, opts.rounds // 2),
                    warmup=opts.warmup,
                    labels=(ours_name, anchor),
                )
                results[label][f"{ours_name}@{anchor}"] = a
                results[label][anchor] = b
        rss = {name: peak_rss_kib(b, roots[name], bundles["netns"]) for name, b in binaries.items()}
        print(
            "peak RSS of the runtime process during run: "
            + ", ".join(f"{n} {v:.0f} KiB" for n, v in rss.items())
        )
        monitor_rss, monitor_pss = monitor_memory_kib(
            base, tar, binaries[ours_name], roots[ours_name]
        )
        # skiff-runtime's default cgroup parent: only empty directories go.
        remove_tree("skiff-runtime")
        print(
            f"skiff-monitor beside a running container: RSS {monitor_rss:.0f} KiB, PSS {monitor_pss:.0f} KiB (conmon: ~2048 KiB RSS)"
        )

    def pair(label: str, anchor: str) -> tuple[float, float]:
        return results[label][f"{ours_name}@{anchor}"].median, results[label][anchor].median

    ours, crun = pair("netns", "crun")
    ours_vs_runc, runc = pair("netns", "runc")
    harness.goal("median start at most 0.8x crun's", ours <= 0.8 * crun)
    harness.goal("median start at most 0.4x runc's", ours_vs_runc <= 0.4 * runc)
    harness.goal("monitor RSS at most 0.5 MiB", monitor_rss <= 512)
    extra: dict[str, Any] = {"rounds": opts.rounds, "ratio_runc": harness.ratio(ours_vs_runc, runc)}
    for label, stats in results.items():
        for name, st in stats.items():
            key = name.replace("-", "_").replace("@", "_vs_")
            extra[f"{label}_{key}_s"] = st.median
    for label in ("hostnet", "lifecycle"):
        for anchor in ("crun", "runc"):
            extra[f"ratio_{label}_{anchor}"] = harness.ratio(*pair(label, anchor))
    extra["monitor_rss_kib"] = monitor_rss
    extra["monitor_pss_kib"] = monitor_pss
    for name, v in rss.items():
        extra[f"rss_kib_{name.replace('-', '_')}"] = v
    return harness.result(
        bench="runtime-start", ours=ours, anchor="crun run", anchor_value=crun, **extra
    )
