"""A skiffd with images, for container tests: the data root is seeded with
``busybox:latest`` (from Debian's busybox-static) and ``probe:latest`` (the static
probe) through the image store before the daemon starts, so container tests need
neither a registry nor the image routes."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker as dockerpy

from skiff.engine import monitor as mon
from skiff.image.service import ImageService
from tests.support.daemon import RunningDaemon, start_daemon

DOCKER = shutil.which("docker")


def reap(root: Path, cgroup_parent: str) -> list[str]:
    """After the daemon under ``root`` stopped: ends what it left of its containers
    (their cgroups under ``cgroup_parent`` are named by their ids) — processes, and
    the monitors beside them, which clean up after them — and unmounts what is left
    mounted under ``root``. Returns what there was: a daemon that stops leaves
    nothing, so a test fails on it, and leaves the machine clean all the same."""
    from tests.support import cgroups

    left: list[str] = []
    ids = {p.name for d in ("data/containers", "exec/runtime") if (root / d).is_dir()
           for p in (root / d).iterdir() if not p.name.startswith(".")}  # fmt: skip
    inits = {pid for cid in ids for pid in cgroups.pids(f"{cgroup_parent}/{cid}")}
    monitors = {m for m in map(mon.parent_of, inits) if mon.is_monitor(m)}
    for pid in sorted(inits):
        left.append(f"process {pid} of a container")
        _kill(pid)
    for pid in sorted(monitors):
        left.append(f"its monitor {pid}")
        if not _wait_gone(pid, 10):
            _kill(pid)
    mounts = [
        line.split(" ")[4]
        for line in Path("/proc/self/mountinfo").read_text().splitlines()
        if line.split(" ")[4].startswith(f"{root}/")
    ]
    for target in sorted(mounts, key=len, reverse=True):
        left.append(f"mount {target}")
        subprocess.run(["umount", "-l", target], check=False)
    return left


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while os.path.exists(f"/proc/{pid}"):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def seed_images(data_root: Path, tars: dict[str, Path]) -> dict[str, str]:
    """Imports each root filesystem tar as the tag naming it; returns tag -> image ID."""
    svc = ImageService(data_root)
    try:
        return {tag: svc.import_tar(tar, tag=tag).id for tag, tar in tars.items()}
    finally:
        svc.close()


def start_engine(
    root: Path,
    tars: dict[str, Path],
    config: dict[str, object] | None = None,
    pass_fds: tuple[int, ...] = (),
) -> RunningDaemon:
    root.mkdir(parents=True, exist_ok=True)
    seed_images(root / "data", tars)
    # Its containers under the session's cgroup parent (start_daemon's default).
    return start_daemon(root, config=json.dumps(config or {}), pass_fds=pass_fds)


@dataclass
class DockerResult:
    code: int
    out: str
    err: str


def docker(
    daemon: RunningDaemon, *args: str, input: str | None = None, timeout: float = 60
) -> DockerResult:
    """The real docker CLI against ``daemon``; any exit code (tests check it)."""
    assert DOCKER is not None, "the docker CLI is not installed"
    proc = subprocess.run(
        [DOCKER, *args],
        capture_output=True,
        text=True,
        env=daemon.env(),
        timeout=timeout,
        input=input,
    )
    return DockerResult(proc.returncode, proc.stdout, proc.stderr)


def docker_ok(
    daemon: RunningDaemon, *args: str, input: str | None = None, timeout: float = 60
) -> str:
    """Like :func:`docker`, asserting success; returns stdout."""
    r = docker(daemon, *args, input=input, timeout=timeout)
    assert r.code == 0, f"docker {' '.join(args)} exited {r.code}: {r.err}"
    return r.out


def uname(prefix: str) -> str:
    """A container, image or volume name of its own: ``prefix`` and 8 random hex digits."""
    return f"{prefix}-{secrets.token_hex(4)}"


@contextlib.contextmanager
def container(daemon: RunningDaemon, *run_args: str, prefix: str) -> Iterator[str]:
    """``docker run -d --name <uname(prefix)> *run_args``; removed (``docker rm -f``)
    afterwards. Yields the name."""
    name = uname(prefix)
    docker_ok(daemon, "run", "-d", "--name", name, *run_args)
    try:
        yield name
    finally:
        docker(daemon, "rm", "-f", name)


@contextlib.contextmanager
def removed_after(daemon: RunningDaemon) -> Iterator[list[str]]:
    """A list for the names of containers a test makes; each is removed
    (``docker rm -f``) afterwards."""
    names: list[str] = []
    try:
        yield names
    finally:
        for name in names:
            docker(daemon, "rm", "-f", name)


@contextlib.contextmanager
def dockerpy_client(daemon: RunningDaemon, **kwargs: Any) -> Iterator[dockerpy.DockerClient]:
    """A docker-py client of ``daemon`` (``kwargs`` as DockerClient takes them), closed
    afterwards."""
    client = dockerpy.DockerClient(base_url=daemon.host, **kwargs)
    try:
        yield client
    finally:
        client.close()
