"""Commit: the diff + compress + hash of a container's upper dir of 20,000 small files
into a layer, by Skiff vs `tar -czf` + `sha256sum` of the same dir and vs `docker commit`.

Sides, alternated in one run (A B C D, A B C D, ...):
- skiff: `diff_upper` of the upper dir (tar, gzip and both digests in one pass), a whole
  Python process, as the issue measures it;
- tar+sha256sum: `tar -czf` of the same dir, then `sha256sum` of the result;
- docker: `docker commit` (CLI to exit) of a container whose upper dir holds the same
  20,000 files, on a dockerd and containerd of the benchmark's own (as `benches/run pull`
  starts them). Each round commits a new container (created and filled untimed; a file
  naming the round makes every layer new, so none is found in docker's store already);
- skiff commit: the whole `skiff.image.commit.commit` into a fresh store (the diff above,
  then storing the blob and unpacking it into a snapshot, as docker does too), shown
  for what a user waits for.

Nothing is deleted until all rounds are done (BENCHMARKS.md: creating files right after
deleting many is slow on this disk). Goal (informational): the diff at least 3x faster
than the tools and than docker commit.
"""

from __future__ import annotations

import argparse
import shlex
import shutil
from pathlib import Path
from typing import Any

import _registry_bench as rb
import harness
from _image_inputs import build_busybox_tar, small_files

REPO = Path(__file__).resolve().parents[1]
PY = str(REPO / ".venv" / "bin" / "python")
#: BENCHMARKS.md's figure for docker commit, shown when docker cannot run here.
DOCKER_COMMIT_REFERENCE_S = 1.60


def _docker_side(
    base: Path, upper: Path, names: rb.Counter
) -> tuple[rb.Containerd, rb.Dockerd, rb.Prepare]:
    """A dockerd of our own holding busybox, and the side that commits a container
    whose upper dir holds ``upper``'s files."""
    for tool in ("dockerd", "docker", "containerd"):
        harness.need_tool(tool)
    containerd = rb.Containerd(base / "containerd")
    containerd.start()
    daemon = rb.Dockerd(base / "dockerd", containerd, [])
    try:
        daemon.start()
        busybox = build_busybox_tar(base / "busybox.tar")
        rb.run_quiet(daemon.cli("import", str(busybox), "bench/busybox:latest"), "docker import")
    except BaseException:
        daemon.stop()
        containerd.stop()
        raise

    def prepare() -> tuple[list[str], Any]:
        name = names.next("c")
        cid = rb.run_quiet(
            daemon.cli("create", "--network", "none", "--name", name, "bench/busybox", "true"),
            "docker create",
        ).strip()
        where = rb.run_quiet(
            daemon.cli("inspect", "--format", "{{.GraphDriver.Data.UpperDir}}", cid),
            "docker inspect",
        ).strip()
        if not where or not Path(where).is_dir():
            raise harness.BenchError(f"container {cid}: no overlay2 upper dir ({where!r})")
        rb.run_quiet(["cp", "-a", f"{upper}/.", where], "filling the container's upper dir")
        (Path(where) / f"round-{name}").write_text(name)
        return daemon.cli("commit", cid, f"bench/commit:{name}"), lambda: None

    return containerd, daemon, prepare


def main(args: list[str]) -> dict[str, Any]:
    p = argparse.ArgumentParser(prog="benches/run commit", description=__doc__)
    p.add_argument("--rounds", type=harness.count_arg(1), default=7)
    p.add_argument("--warmup", type=harness.count_arg(0), default=1)
    p.add_argument(
        "--level", type=int, default=None, help="gzip level for Skiff (default 6, as tar's gzip)"
    )
    p.add_argument("--no-docker", action="store_true", help="skip the docker commit anchor")
    opts = p.parse_args(args)
    names = rb.Counter()
    level = "None" if opts.level is None else str(opts.level)
    containerd: rb.Containerd | None = None
    daemon: rb.Dockerd | None = None
    with harness.workdir("skiff-bench-commit") as base:
        try:
            rb.docker_env(base)
            print("building the inputs (untimed) ...", flush=True)
            upper = small_files(base / "upper")
            out = base / "out"
            out.mkdir()

            def ours() -> tuple[list[str], Any]:
                target = out / f"{names.next('c')}.tgz"
                code = (
                    "from skiff import _native;"
                    f" _native.diff_upper({str(upper)!r}, {str(target)!r}, level={level})"
                )
                return [PY, "-c", code], lambda: None

            def tools() -> tuple[list[str], Any]:
                target = out / f"{names.next('t')}.tgz"
                script = (
                    f"tar -czf {shlex.quote(str(target))} -C {shlex.quote(str(upper))} ."
                    f" && sha256sum {shlex.quote(str(target))} >/dev/null"
                )
                return ["bash", "-c", script], lambda: None

            def full_commit() -> tuple[list[str], Any]:
                root = out / names.next("store")
                code = (
                    "from pathlib import Path; from skiff.image.service import ImageService;"
                    " from skiff.image.commit import commit;"
                    f" svc = ImageService(Path({str(root)!r}));"
                    f" commit(svc, Path({str(upper)!r}), None, tag='bench/commit:latest',"
                    f" level={level}); svc.close()"
                )
                return [PY, "-c", code], lambda: None

            sides: dict[str, rb.Prepare] = {"skiff": ours, "tar+sha256sum": tools}
            docker_skip: str | None = "--no-docker" if opts.no_docker else None
            if docker_skip is None:
                try:
                    containerd, daemon, docker_commit = _docker_side(base / "docker", upper, names)
                    sides["docker commit"] = docker_commit
                except harness.BenchError as e:
                    docker_skip = str(e)
                    print(f"docker anchor skipped: {e}", flush=True)
            sides["skiff commit"] = full_commit
            stats = rb.alternate_prepared(sides, rounds=opts.rounds, warmup=opts.warmup)
        finally:
            if daemon is not None:
                daemon.stop()
            if containerd is not None:
                containerd.stop()
            rb.unmount_under(base)
            shutil.rmtree(base / "docker", ignore_errors=True)
    s = stats["skiff"].median
    tools_s = stats["tar+sha256sum"].median
    docker_s = stats["docker commit"].median if "docker commit" in stats else None
    full_s = stats["skiff commit"].median
    harness.goal("commit at least 3x faster than tar -czf + sha256sum", s * 3 <= tools_s)
    if docker_s is not None:
        harness.goal("commit at least 3x faster than docker commit", s * 3 <= docker_s)
    else:
        harness.goal(
            f"commit at least 3x faster than docker commit ({DOCKER_COMMIT_REFERENCE_S} s,"
            " BENCHMARKS.md; docker not run here)",
            s * 3 <= DOCKER_COMMIT_REFERENCE_S,
        )
    return harness.result(
        bench="commit",
        ours=s,
        anchor="tar -czf + sha256sum",
        anchor_value=tools_s,
        docker_commit_s=docker_s,
        ratio_docker_commit=harness.ratio(s, docker_s) if docker_s is not None else None,
        docker_skipped=docker_skip,
        skiff_full_commit_s=full_s,
        ratio_full_commit_docker=harness.ratio(full_s, docker_s) if docker_s is not None else None,
        files=20_000,
        rounds=opts.rounds,
        docker_commit_reference_s=DOCKER_COMMIT_REFERENCE_S,
    )
