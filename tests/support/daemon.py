"""A real skiffd, started for tests on a private socket and data root, and stopped
(SIGTERM, then checked for a clean exit) when done."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from skiff.client import APIClient
from skiff.hosts import parse_host

#: The cgroup parent of every container the tests start (removed at the end of the
#: session). No test daemon uses the host's default (/skiff): a real skiffd on the
#: machine has its containers there, and the leak check would not see a test's
#: cgroups under a parent that was there before.
CGROUP_PARENT = f"skiff-test-{os.getpid()}"


def with_cgroup_parent(config: str) -> str:
    """``config`` (daemon.json) with :data:`CGROUP_PARENT` unless it names a cgroup
    parent; text that is no JSON object (a test of a refusal) as written."""
    try:
        cfg = json.loads(config)
    except ValueError:
        return config
    if not isinstance(cfg, dict) or "cgroup-parent" in cfg:
        return config
    return json.dumps({"cgroup-parent": CGROUP_PARENT, **cfg})


@dataclass
class RunningDaemon:
    root: Path
    proc: subprocess.Popen[bytes]
    log_path: Path
    extra_args: list[str] = field(default_factory=list)

    @property
    def socket(self) -> Path:
        return self.root / "skiff.sock"

    @property
    def host(self) -> str:
        return f"unix://{self.socket}"

    @property
    def pidfile(self) -> Path:
        return self.root / "skiffd.pid"

    def client(self) -> APIClient:
        return APIClient(parse_host(self.host))

    def env(self) -> dict[str, str]:
        """An environment whose docker and skiff clients talk to this daemon."""
        env = {k: v for k, v in os.environ.items() if k not in ("DOCKER_HOST", "SKIFF_HOST")}
        env["DOCKER_HOST"] = self.host
        return env

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout: float = 15) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError(f"skiffd did not stop on SIGTERM:\n{self.log()}") from None
        return self.proc.returncode


def skiffd_command(root: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "skiff.daemon",
        "-H",
        f"unix://{root / 'skiff.sock'}",
        "--data-root",
        str(root / "data"),
        "--exec-root",
        str(root / "exec"),
        "--pidfile",
        str(root / "skiffd.pid"),
        "--config-file",
        str(root / "daemon.json"),
        *extra,
    ]


def start_daemon(
    root: Path,
    *extra: str,
    config: str = "{}",
    timeout: float = 20,
    pass_fds: tuple[int, ...] = (),
) -> RunningDaemon:
    """Starts skiffd under ``root`` (with ``pass_fds`` inherited) and waits until it
    answers ``/_ping``."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "daemon.json").write_text(with_cgroup_parent(config))
    log_path = root / "skiffd.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            skiffd_command(root, *extra), stdout=log, stderr=subprocess.STDOUT, pass_fds=pass_fds
        )
    daemon = RunningDaemon(root, proc, log_path, list(extra))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"skiffd exited with {proc.returncode}:\n{daemon.log()}")
        if daemon.socket.exists():
            try:
                with daemon.client() as client:
                    client.ping()
                return daemon
            except Exception:
                pass
        time.sleep(0.02)
    daemon.stop()
    raise AssertionError(f"skiffd did not answer within {timeout}s:\n{daemon.log()}")
