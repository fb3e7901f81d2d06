"""What the engine benchmarks (docker-run, api-run, density) share: a skiffd and a
dockerd (on its own containerd) of the benchmark's own, each with the busybox image,
on private sockets and data roots; stopped by PID and removed at the end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import harness
from _registry_bench import Containerd, Dockerd, docker_env, remove_tree, start_daemon, stop_pid

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
PY = str(REPO / ".venv" / "bin" / "python")
#: Where skiffd puts the benchmark's containers (removed, empty, at the end).
CGROUP_PARENT = harness.CGROUP_PARENT


@dataclass
class Skiffd:
    root: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def socket(self) -> Path:
        return self.root / "s.sock"

    @property
    def host(self) -> str:
        return f"unix://{self.socket}"

    def cli(self, *args: str) -> list[str]:
        return [harness.need_tool("docker"), "-H", self.host, *args]

    def start(self, busybox_tar: Path) -> None:
        from tests.support.engine import seed_images

        self.root.mkdir(parents=True)
        seed_images(self.root / "data", {"busybox:latest": busybox_tar})
        (self.root / "daemon.json").write_text(json.dumps({"cgroup-parent": CGROUP_PARENT}))
        argv = [
            PY,
            "-m",
            "skiff.daemon",
            "-H",
            self.host,
            "--data-root",
            str(self.root / "data"),
            "--exec-root",
            str(self.root / "exec"),
            "--pidfile",
            str(self.root / "skiffd.pid"),
            "--config-file",
            str(self.root / "daemon.json"),
        ]
        self.proc = start_daemon(
            argv, self.root / "skiffd.log", self.socket, self.cli("version"), "skiffd"
        )

    def stop(self) -> None:
        if self.proc is not None:
            stop_pid(self.proc)
            self.proc = None


@dataclass
class Engines:
    skiffd: Skiffd
    dockerd: Dockerd


def busybox_tar(base: Path) -> Path:
    from tests.support.images import build_busybox_tar

    return build_busybox_tar(base / "busybox.tar")


@contextmanager
def engines(name: str) -> Iterator[Engines]:
    """Both daemons, each with ``busybox:latest``."""
    with harness.workdir(name) as base:
        docker_env(base)
        tar = busybox_tar(base)
        skiffd = Skiffd(base / "sk")
        containerd = Containerd(base / "ctd")
        dockerd = Dockerd(base / "dk", containerd, [])
        try:
            print("starting skiffd, containerd and dockerd (untimed) ...", flush=True)
            skiffd.start(tar)
            containerd.start()
            dockerd.start()
            subprocess.run(
                dockerd.cli("import", str(tar), "busybox:latest"),
                check=True,
                stdout=subprocess.DEVNULL,
            )
            yield Engines(skiffd, dockerd)
        finally:
            for cli in (skiffd.cli, dockerd.cli):
                if (skiffd.proc if cli == skiffd.cli else dockerd.proc) is None:
                    continue
                ids = subprocess.run(cli("ps", "-aq"), capture_output=True, text=True).stdout
                if ids.split():
                    subprocess.run(cli("rm", "-f", *ids.split()), capture_output=True)
            skiffd.stop()
            dockerd.stop()
            containerd.stop()
            harness.remove_cgroup_parent(CGROUP_PARENT)
            remove_tree(base / "dk")
            remove_tree(base / "ctd")


def rss_kib(pid: int) -> int:
    """Resident memory of one process (VmRSS), in KiB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


def pss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        pass
    return 0


def parent_of(pid: int) -> int:
    """The parent pid (0 when the process is gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return 0
    return int(stat[stat.rfind(")") + 2 :].split()[1])


def pids_named(name: str, under: str) -> list[int]:
    """PIDs whose command line starts with a program called ``name`` and mentions
    ``under`` (our own daemons' directories): only processes this benchmark made."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            argv = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
        except (FileNotFoundError, ProcessLookupError):
            continue
        program = os.path.basename(argv[0].decode(errors="replace")) if argv else ""
        if program == name and under.encode() in b" ".join(argv):
            out.append(int(entry))
    return out
