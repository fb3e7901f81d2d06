"""Helpers shared by the registry benchmarks (pull, push): a local registry, a dockerd
and containerd of the benchmark's own, podman's flags, an alternation runner whose
sides prepare untimed before each timed command, and the cleanup of mounts and dirs.

Everything started here is stopped by its PID (SIGTERM, then waited); nothing talks to
anything but 127.0.0.1."""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import harness

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.support.registry import Registry, start_registry  # noqa: E402

PY = str(REPO / ".venv" / "bin" / "python")
REF_PATH = "bench/big:latest"

#: A side of a comparison: an untimed prepare returning (timed argv, untimed cleanup).
Prepare = Callable[[], tuple[list[str], Callable[[], None]]]


# --------------------------------------------------------------------------- processes


def stop_pid(proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    """SIGTERM the process this benchmark started, wait; SIGKILL if it lingers."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def unmount_under(root: Path) -> None:
    """Lazily unmount everything mounted at or below ``root`` (deepest first)."""
    prefix = str(root.resolve())
    points = []
    with open("/proc/self/mounts") as f:
        for line in f:
            point = line.split()[1].replace("\\040", " ")
            if point == prefix or point.startswith(prefix + "/"):
                points.append(point)
    for point in sorted(set(points), key=len, reverse=True):
        subprocess.run(["umount", "-l", point], check=False, stderr=subprocess.DEVNULL)


def remove_tree(root: Path) -> None:
    """Unmount what podman or dockerd left under ``root``, then remove it."""
    if root.exists():
        unmount_under(root)
        shutil.rmtree(root, ignore_errors=True)


def run_quiet(argv: list[str], what: str) -> str:
    """Run an untimed helper command; BenchError with its output if it fails."""
    proc = subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        raise harness.BenchError(
            f"{what} failed (exit {proc.returncode}): {shlex.join(argv)}\n"
            f"{proc.stderr.strip()[-2000:]}"
        )
    return proc.stdout


@contextlib.contextmanager
def registry(root: Path) -> Iterator[Registry]:
    """Debian's docker-registry (no auth) on 127.0.0.1 with a free port, under ``root``."""
    root.mkdir(parents=True)
    try:
        reg = start_registry(root)
    except RuntimeError as e:
        raise harness.BenchError(str(e)) from e
    try:
        yield reg
    finally:
        reg.stop()


# --------------------------------------------------------------------------- the image


def _layout_layers(layout: Path) -> list[str]:
    index = json.loads((layout / "index.json").read_text())
    blobs = layout / "blobs" / "sha256"
    man = json.loads((blobs / index["manifests"][0]["digest"][7:]).read_text())
    return [layer["digest"] for layer in man["layers"]]


#: No proxy: the only traffic is to 127.0.0.1.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _registry_layers(host: str, path: str) -> tuple[list[str], list[str]]:
    name, tag = path.rsplit(":", 1)
    req = urllib.request.Request(
        f"http://{host}/v2/{name}/manifests/{tag}",
        headers={
            "Accept": "application/vnd.oci.image.manifest.v1+json,"
            "application/vnd.docker.distribution.manifest.v2+json"
        },
    )
    with _OPENER.open(req, timeout=10) as resp:
        man = json.loads(resp.read())
    return [x["digest"] for x in man["layers"]], [x["mediaType"] for x in man["layers"]]


def verify_pushed(host: str, layers: int) -> None:
    """Check (untimed) that the registry holds the image's manifest with ``layers``
    layers, each blob present, so a timed push is known to have done the whole work."""
    digests, _ = _registry_layers(host, REF_PATH)
    if len(digests) != layers:
        raise harness.BenchError(f"{host}: {len(digests)} layers pushed, expected {layers}")
    name = REF_PATH.rsplit(":", 1)[0]
    for digest in digests:
        req = urllib.request.Request(f"http://{host}/v2/{name}/blobs/{digest}", method="HEAD")
        with _OPENER.open(req, timeout=10) as resp:
            if resp.status != 200:
                raise harness.BenchError(f"{host}: blob {digest} missing after the push")


def seed(layout: Path, host: str) -> None:
    """Put the image in the registry (untimed) and check its layers stayed the same gzip."""
    run = [
        harness.need_tool("skopeo"),
        "copy",
        "--quiet",
        "--preserve-digests",
        "--dest-tls-verify=false",
        f"oci:{layout}:big",
        f"docker://{host}/{REF_PATH}",
    ]
    run_quiet(run, "pushing the big image with skopeo")
    digests, types = _registry_layers(host, REF_PATH)
    if digests != _layout_layers(layout):
        raise harness.BenchError("the registry's layers differ from the layout's (recompressed?)")
    if not all(t.endswith("gzip") for t in types):
        raise harness.BenchError(f"the registry's layers are not gzip: {types}")


# --------------------------------------------------------------------------- podman


def short_dir() -> Path:
    """A directory with a short path for podman's run roots (podman refuses a runroot
    longer than 50 characters); the caller removes it."""
    return Path(tempfile.mkdtemp(prefix="skb", dir="/tmp"))


def podman_argv(root: Path, short: Path) -> list[str]:
    """podman on its own storage under ``root`` (as BENCHMARKS.md asks), with its run
    root a fresh directory under ``short``."""
    runroot = Path(tempfile.mkdtemp(prefix="r", dir=short))
    return [
        harness.need_tool("podman"),
        "--root",
        str(root / "storage"),
        "--runroot",
        str(runroot),
        "--cgroup-manager",
        "cgroupfs",
        "--events-backend",
        "file",
        "--storage-driver",
        "overlay",
    ]


# --------------------------------------------------------------------------- docker


class Containerd:
    """A containerd of our own: config, root, state and socket under one directory."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.socket = root / "containerd.sock"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.root.mkdir(parents=True)
        config = self.root / "config.toml"
        config.write_text(
            "version = 2\n"
            f'root = "{self.root / "root"}"\n'
            f'state = "{self.root / "state"}"\n'
            'disabled_plugins = ["io.containerd.grpc.v1.cri"]\n'
            "[grpc]\n"
            f'  address = "{self.socket}"\n'
            "[ttrpc]\n"
            f'  address = "{self.root / "containerd.sock.ttrpc"}"\n'
            "[debug]\n"
            f'  address = "{self.root / "debug.sock"}"\n'
            "[metrics]\n"
            '  address = ""\n'
        )
        # Up once its socket exists: nothing more to ask it.
        self.proc = start_daemon(
            [harness.need_tool("containerd"), "--config", str(config)],
            self.root / "containerd.log",
            self.socket,
            ["true"],
            "containerd",
        )

    def stop(self) -> None:
        if self.proc is not None:
            stop_pid(self.proc)


class Dockerd:
    """A dockerd of our own on a given containerd, with its data under ``root``."""

    def __init__(self, root: Path, containerd: Containerd, insecure: list[str]) -> None:
        self.root = root
        self.containerd = containerd
        self.insecure = insecure
        self.socket = root / "docker.sock"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def host(self) -> str:
        return f"unix://{self.socket}"

    def cli(self, *args: str) -> list[str]:
        return [harness.need_tool("docker"), "-H", self.host, *args]

    def start(self) -> None:
        self.root.mkdir(parents=True)
        argv = [
            harness.need_tool("dockerd"),
            "--data-root",
            str(self.root / "data"),
            "--exec-root",
            str(self.root / "exec"),
            "--pidfile",
            str(self.root / "docker.pid"),
            "-H",
            self.host,
            "--containerd",
            str(self.containerd.socket),
            "--iptables=false",
            "--ip-masq=false",
            "--bridge=none",
            "--storage-driver",
            "overlay2",
        ]
        for host in self.insecure:
            argv += ["--insecure-registry", host]
        self.proc = start_daemon(
            argv,
            self.root / "dockerd.log",
            self.socket,
            self.cli("version", "--format", "{{.Server.Version}}"),
            "dockerd",
        )

    def stop(self) -> None:
        if self.proc is not None:
            stop_pid(self.proc)
        unmount_under(self.root)


def log_tail(path: Path) -> str:
    return path.read_text(errors="replace")[-1500:] if path.exists() else "(no log)"


def start_daemon(
    argv: list[str], log_path: Path, socket: Path, ready: list[str], what: str
) -> subprocess.Popen[bytes]:
    """Starts a daemon of the benchmark's own (its output into ``log_path``) and waits
    until ``ready`` succeeds against its ``socket``; stops it and raises BenchError
    with the log's tail when it does not come up within 30 s."""
    with log_path.open("ab") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=log, stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while True:
        if proc.poll() is not None or time.monotonic() > deadline:
            stop_pid(proc)
            raise harness.BenchError(f"{what} did not start: {log_tail(log_path)}")
        ready_now = socket.exists() and subprocess.run(ready, capture_output=True).returncode == 0
        if ready_now:
            return proc
        time.sleep(0.05)


def docker_env(root: Path) -> None:
    """Keep the docker CLI's config (auth, contexts) out of the user's home; every
    docker command started after this (timed or not) inherits it."""
    config = root / "docker-cli"
    config.mkdir()
    # podman reads $DOCKER_CONFIG/config.json for credentials too: it must exist.
    (config / "config.json").write_text("{}\n")
    os.environ["DOCKER_CONFIG"] = str(config)


# --------------------------------------------------------------------------- timing


def time_argv(argv: list[str]) -> int:
    """Wall time in ns of a whole process that must exit 0 (stdout to /dev/null; its
    stderr kept aside and shown if it fails)."""
    with tempfile.TemporaryFile() as err:
        t0 = time.perf_counter_ns()
        try:
            rc = subprocess.run(
                argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err
            ).returncode
        except OSError as e:
            raise harness.BenchError(f"cannot run {shlex.join(argv)}: {e}") from e
        dt = time.perf_counter_ns() - t0
        if rc != 0:
            err.seek(0)
            tail = err.read().decode(errors="replace").strip()[-2000:]
            raise harness.BenchError(f"command failed (exit {rc}): {shlex.join(argv)}\n{tail}")
    return dt


def alternate_prepared(
    sides: dict[str, Prepare], *, rounds: int, warmup: int = 1
) -> dict[str, harness.Stats]:
    """Like harness.alternate_many, but each run of a side is prepared untimed first
    (fresh storage, a fresh registry or daemon) and cleaned up untimed after."""
    if rounds < 1:
        raise ValueError("rounds must be >= 1")
    samples: dict[str, list[int]] = {label: [] for label in sides}
    width = max(len(label) for label in sides)
    shown: set[str] = set()
    for i in range(warmup + rounds):
        for label, prepare in sides.items():
            argv, cleanup = prepare()
            if label not in shown:
                print(f"  {label:<{width}}  {shlex.join(argv)}", flush=True)
                shown.add(label)
            try:
                ns = time_argv(argv)
            except BaseException:
                with contextlib.suppress(Exception):
                    cleanup()
                raise
            cleanup()
            if i >= warmup:
                samples[label].append(ns)
    stats = {label: harness.Stats.from_ns(ns) for label, ns in samples.items()}
    for label, st in stats.items():
        print(f"  {label:<{width}}  {st.describe()}", flush=True)
    labels = list(sides)
    for other in labels[1:]:
        r = harness.ratio(stats[labels[0]].median, stats[other].median)
        print(
            f"  ratio of medians {labels[0]}/{other} = {'n/a' if r is None else f'{r:.3f}'}",
            flush=True,
        )
    return stats


@dataclass
class Counter:
    """Fresh names for per-run directories."""

    n: int = 0

    def next(self, prefix: str) -> str:
        self.n += 1
        return f"{prefix}{self.n}"
