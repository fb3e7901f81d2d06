"""Others' tools drive skiff-runtime: podman (--runtime) and containerd's runc shim
(ctr run --runc-binary), both from Debian's packages, each with private state that
the test removes."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from skiff.runtime.binary import find_runtime
from tests.conftest import short_tmpdir
from tests.support.cgroups import remove_tree

pytestmark = pytest.mark.root

PODMAN = shutil.which("podman")
CONTAINERD = shutil.which("containerd")
CTR = shutil.which("ctr")


def _umount_below(path: Path) -> None:
    """Lazily unmounts whatever a tool left mounted under ``path``, deepest first."""
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split(" ")[4]
        if point == str(path) or point.startswith(f"{path}/"):
            points.append(point)
    for point in sorted(points, key=len, reverse=True):
        subprocess.run(["umount", "-l", point], check=False)


# --------------------------------------------------------------------------- podman


@pytest.fixture
def podman(busybox_tar: Path) -> Iterator[list[str]]:
    if PODMAN is None:
        pytest.skip("podman is not installed")
    base = short_tmpdir("skiff-podman-")
    cmd = [
        PODMAN,
        "--root",
        str(base / "storage"),
        "--runroot",
        str(base / "run"),
        "--tmpdir",
        str(base / "tmp"),
        "--runtime",
        str(find_runtime()),
        "--cgroup-manager",
        "cgroupfs",
        "--events-backend",
        "file",
        "--storage-driver",
        "vfs",
    ]
    env = {**os.environ, "CONTAINERS_CONF": str(base / "containers.conf")}
    (base / "containers.conf").write_text(f'[engine]\nevents_logfile_path = "{base}/events.log"\n')
    subprocess.run(
        [*cmd, "import", str(busybox_tar), "localhost/skiff-busybox:test"],
        check=True,
        capture_output=True,
        env=env,
    )
    os.environ["CONTAINERS_CONF"] = env["CONTAINERS_CONF"]
    try:
        yield cmd
    finally:
        subprocess.run([*cmd, "rm", "-a", "-f"], capture_output=True)
        subprocess.run([*cmd, "rmi", "-a", "-f"], capture_output=True)
        os.environ.pop("CONTAINERS_CONF", None)
        _umount_below(base)
        shutil.rmtree(base, ignore_errors=True)
        remove_tree("libpod_parent")


PODMAN_RUN = [
    "run",
    "--rm",
    "--network",
    "none",
    "--ulimit",
    "nofile=20000:20000",
    "--ulimit",
    "nproc=32768:32768",
]


def test_podman_runs_busybox(podman: list[str]) -> None:
    out = subprocess.run(
        [
            *podman,
            *PODMAN_RUN,
            "--hostname",
            "podbox",
            "localhost/skiff-busybox:test",
            "sh",
            "-c",
            "hostname; echo $((6*7)); exit 3",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 3, out.stderr
    assert out.stdout.split() == ["podbox", "42"]


def test_podman_runs_the_probe(podman: list[str], probe: Path) -> None:
    out = subprocess.run(
        [
            *podman,
            *PODMAN_RUN,
            "-v",
            f"{probe}:/probe:ro",
            "--user",
            "1234:5678",
            "localhost/skiff-busybox:test",
            "/probe",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    seen = json.loads(out.stdout)
    assert seen["pid"] == 1
    assert (seen["uid"], seen["gid"]) == (1234, 5678)
    assert seen["seccomp"] == 2  # podman's default profile, compiled by skiff-runtime
    assert seen["rlimits"]["RLIMIT_NOFILE"]["soft"] == 20000


# --------------------------------------------------------------------------- containerd


@pytest.fixture
def containerd() -> Iterator[tuple[str, str]]:
    if CONTAINERD is None or CTR is None:
        pytest.skip("containerd is not installed")
    base = short_tmpdir("skiff-ctrd-")
    sock = base / "containerd.sock"
    (base / "config.toml").write_text(
        "\n".join(
            [
                "version = 2",
                f'root = "{base}/root"',
                f'state = "{base}/state"',
                'disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.btrfs",'
                ' "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.aufs",'
                ' "io.containerd.snapshotter.v1.devmapper"]',
                "[grpc]",
                f'  address = "{sock}"',
                "[ttrpc]",
                f'  address = "{sock}.ttrpc"',
                '[plugins."io.containerd.internal.v1.opt"]',
                f'  path = "{base}/opt"',
            ]
        )
    )
    log = (base / "containerd.log").open("wb")
    proc = subprocess.Popen(
        [CONTAINERD, "--config", str(base / "config.toml")], stdout=log, stderr=subprocess.STDOUT
    )
    namespace = f"skiff-test-{uuid.uuid4().hex[:8]}"
    try:
        deadline = time.monotonic() + 30
        while (
            subprocess.run([CTR, "-a", str(sock), "version"], capture_output=True).returncode != 0
        ):
            assert proc.poll() is None, (base / "containerd.log").read_text()
            assert time.monotonic() < deadline, "containerd did not start"
            time.sleep(0.1)
        yield str(sock), namespace
    finally:
        for c in subprocess.run(
            [CTR, "-a", str(sock), "-n", namespace, "c", "ls", "-q"], capture_output=True, text=True
        ).stdout.split():
            subprocess.run(
                [CTR, "-a", str(sock), "-n", namespace, "t", "kill", "-s", "KILL", c],
                capture_output=True,
            )
            subprocess.run(
                [CTR, "-a", str(sock), "-n", namespace, "c", "rm", c], capture_output=True
            )
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        _umount_below(base)
        shutil.rmtree(base, ignore_errors=True)
        shutil.rmtree(f"/run/containerd/runc/{namespace}", ignore_errors=True)
        with contextlib.suppress(OSError):
            os.rmdir(f"/run/containerd/io.containerd.runtime.v2.task/{namespace}")
        remove_tree(namespace)


def _rootfs(tar: Path) -> Path:
    root = short_tmpdir("skiff-ctr-rootfs-")
    subprocess.run(["tar", "-xf", str(tar), "-C", str(root)], check=True)
    return root


def _ctr_run(
    containerd: tuple[str, str], rootfs: Path, *command: str
) -> subprocess.CompletedProcess[str]:
    sock, namespace = containerd
    cid = f"c{uuid.uuid4().hex[:10]}"
    assert CTR is not None
    return subprocess.run(
        [
            CTR,
            "-a",
            sock,
            "-n",
            namespace,
            "run",
            "--rm",
            "--runtime",
            "io.containerd.runc.v2",
            "--runc-binary",
            str(find_runtime()),
            "--rootfs",
            str(rootfs),
            cid,
            *command,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_containerd_shim_runs_busybox(containerd: tuple[str, str], busybox_tar: Path) -> None:
    rootfs = _rootfs(busybox_tar)
    try:
        out = _ctr_run(
            containerd,
            rootfs,
            "/bin/sh",
            "-c",
            "echo hello from ctr; cat /proc/1/cmdline | tr '\\0' ' '",
        )
        assert out.returncode == 0, out.stderr
        assert out.stdout.splitlines()[0] == "hello from ctr"
        assert out.stdout.splitlines()[1].startswith("/bin/sh -c")
    finally:
        _umount_below(rootfs)
        shutil.rmtree(rootfs, ignore_errors=True)


def test_containerd_shim_runs_the_probe(containerd: tuple[str, str], probe_tar: Path) -> None:
    rootfs = _rootfs(probe_tar)
    try:
        out = _ctr_run(containerd, rootfs, "/probe")
        assert out.returncode == 0, out.stderr
        seen = json.loads(out.stdout)
        assert seen["pid"] == 1
        assert seen["namespaces"]["pid"] != os.stat("/proc/self/ns/pid").st_ino
    finally:
        _umount_below(rootfs)
        shutil.rmtree(rootfs, ignore_errors=True)
