"""The locally built test images work: busybox runs in a chroot, and the static probe
reports what it sees from inside fresh namespaces."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from tests.conftest import short_tmpdir
from tests.support import images


def _unpack(tar_path: Path) -> Path:
    root = short_tmpdir("skiff-rootfs-")
    try:
        subprocess.run(["tar", "-xf", str(tar_path), "-C", str(root)], check=True)
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        raise
    return root


def test_busybox_tar_contents(busybox_tar: Path) -> None:
    with tarfile.open(busybox_tar) as tar:
        members = {m.name: m for m in tar.getmembers()}
    assert members["bin/busybox"].isfile() and members["bin/busybox"].mode == 0o755
    assert members["bin/sh"].issym() and members["bin/sh"].linkname == "/bin/busybox"
    assert len([m for m in members.values() if m.issym()]) == len(images.busybox_applets()) - 1
    assert members["tmp"].mode == 0o1777
    assert all(m.uid == 0 and m.gid == 0 for m in members.values())
    # Deterministic: the same inputs give the same bytes.
    again = images.build_busybox_tar(busybox_tar.with_name("again.tar"))
    assert again.read_bytes() == busybox_tar.read_bytes()
    again.unlink()


@pytest.mark.root
def test_busybox_runs_in_a_chroot(busybox_tar: Path) -> None:
    root = _unpack(busybox_tar)
    try:
        out = subprocess.run(
            [
                "chroot",
                str(root),
                "/bin/sh",
                "-c",
                "echo hello; id; grep -c . /etc/passwd; ls /usr/bin/env",
            ],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert out.returncode == 0, out.stderr
        lines = out.stdout.splitlines()
        assert lines[0] == "hello"
        assert lines[1].startswith("uid=0(root) gid=0(root)")
        assert int(lines[2]) >= 7
        assert lines[3] == "/usr/bin/env"
    finally:
        shutil.rmtree(root)


def test_probe_is_static(probe: Path) -> None:
    header = probe.read_bytes()
    assert header[:4] == b"\x7fELF"
    # A dynamically linked executable names its loader in a PT_INTERP segment.
    assert b"/lib64/ld-linux" not in header and b"ld-linux" not in header[:4096]
    out = subprocess.run(["ldd", str(probe)], capture_output=True, text=True)
    assert (
        "not a dynamic executable" in (out.stdout + out.stderr) or "statically linked" in out.stdout
    )


def test_probe_reports_the_host_view(probe: Path) -> None:
    out = subprocess.run(
        [str(probe), "--exit", "3"], capture_output=True, text=True, env={"A": "1"}, timeout=30
    )
    assert out.returncode == 3
    seen = json.loads(out.stdout)
    assert seen["pid"] > 1 and seen["uid"] == os.getuid()
    assert seen["env"] == {"A": "1"}
    assert seen["cwd"] == os.getcwd()
    assert seen["namespaces"]["pid"] == os.stat("/proc/self/ns/pid").st_ino
    for key in (
        "caps",
        "mounts",
        "cgroup",
        "rlimits",
        "umask",
        "seccomp",
        "no_new_privs",
        "hostname",
        "groups",
    ):
        assert key in seen


@pytest.mark.root
def test_probe_inside_new_namespaces(probe: Path) -> None:
    out = subprocess.run(
        [
            "unshare",
            "--pid",
            "--fork",
            "--mount-proc",
            "--uts",
            "--net",
            "--ipc",
            "--mount",
            "sh",
            "-c",
            f"hostname probe-test && exec {probe}",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 0, out.stderr
    seen = json.loads(out.stdout)
    assert seen["pid"] == 1
    assert seen["hostname"] == "probe-test"
    host_ns = {
        name: os.stat(f"/proc/self/ns/{name}").st_ino
        for name in ("pid", "net", "uts", "ipc", "mnt")
    }
    for name, inode in host_ns.items():
        assert seen["namespaces"][name] != inode, name
    assert seen["namespaces"]["user"] == os.stat("/proc/self/ns/user").st_ino


@pytest.mark.root
def test_probe_in_a_bare_rootfs_degrades_without_proc(probe_tar: Path) -> None:
    root = _unpack(probe_tar)
    try:
        out = subprocess.run(
            ["chroot", str(root), "/probe"], capture_output=True, text=True, timeout=30
        )
        assert out.returncode == 0, out.stderr
        seen = json.loads(out.stdout)
        assert seen["mounts"] is None  # no /proc in there
        assert seen["errors"]
        assert seen["uid"] == 0
    finally:
        shutil.rmtree(root)
