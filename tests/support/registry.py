"""A real registry for tests: Debian's ``docker-registry`` (distribution 2.8) on
127.0.0.1 with a free port, filesystem storage in a temporary directory, optionally
behind htpasswd basic auth. ``start_registry`` waits until ``GET /v2/`` answers;
``Registry.stop`` ends the process it started and removes the directory."""

from __future__ import annotations

import http.client
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

BINARY = "/usr/bin/docker-registry"


@dataclass
class Registry:
    host: str  # "127.0.0.1:PORT"
    root: Path  # the temp dir: config, storage, htpasswd
    proc: subprocess.Popen[bytes]
    user: str = ""
    password: str = ""

    @property
    def storage(self) -> Path:
        return self.root / "storage"

    def blob_data(self, digest: str) -> Path:
        """Where the registry keeps a blob's bytes."""
        hex_ = digest.split(":", 1)[1]
        return self.storage / "docker/registry/v2/blobs/sha256" / hex_[:2] / hex_ / "data"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.root, ignore_errors=True)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _config(
    root: Path, port: int, htpasswd: Path | None, tls: tuple[Path, Path] | None = None
) -> str:
    auth = ""
    if htpasswd is not None:
        auth = f"auth:\n  htpasswd:\n    realm: skiff-test\n    path: {htpasswd}\n"
    return (
        "version: 0.1\n"
        "log:\n  level: warn\n"
        "storage:\n"
        f"  filesystem:\n    rootdirectory: {root / 'storage'}\n"
        "  delete:\n    enabled: true\n"
        f"http:\n  addr: 127.0.0.1:{port}\n"
        + (f"  tls:\n    certificate: {tls[0]}\n    key: {tls[1]}\n" if tls else "")
        + f"{auth}"
    )


def start_registry(
    root: Path, *, user: str = "", password: str = "", tls: tuple[Path, Path] | None = None
) -> Registry:
    """Starts a registry under ``root`` (a fresh temp dir the Registry then owns)."""
    htpasswd = None
    if user:
        line = subprocess.run(
            ["htpasswd", "-Bbn", user, password], check=True, capture_output=True
        ).stdout
        htpasswd = root / "htpasswd"
        htpasswd.write_bytes(line.strip() + b"\n")
    (root / "storage").mkdir()
    for attempt in range(5):
        port = _free_port()
        config = root / "config.yml"
        config.write_text(_config(root, port, htpasswd, tls))
        log = (root / "registry.log").open("ab")
        proc = subprocess.Popen(
            [BINARY, "serve", str(config)], stdout=log, stderr=log, stdin=subprocess.DEVNULL
        )
        log.close()
        reg = Registry(f"127.0.0.1:{port}", root, proc, user, password)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                conn: http.client.HTTPConnection
                if tls:
                    import ssl

                    conn = http.client.HTTPSConnection(
                        "127.0.0.1", port, timeout=2, context=ssl._create_unverified_context()
                    )
                else:
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                conn.request("GET", "/v2/")
                status = conn.getresponse().status
                conn.close()
                if status in (200, 401):
                    return reg
            except OSError:
                pass
            time.sleep(0.05)
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        if attempt == 4:
            text = (root / "registry.log").read_text(errors="replace")
            shutil.rmtree(root, ignore_errors=True)
            raise RuntimeError(f"docker-registry did not start: {text}")
    raise AssertionError("unreachable")
