"""Driving skiff-runtime (or any runc-compatible runtime) by exec'ing it.

Each call runs the binary with ``--log-format json``; an error becomes the
``skiff.errors`` class named by the ``kind`` field of its last log line (so nothing
here reads message text), with the runtime's message.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from skiff.errors import Conflict, InvalidArgument, NotFound, SkiffError
from skiff.runtime.binary import find_runtime

DEFAULT_ROOT = "/run/skiff/runtime"

_KINDS: dict[str, type[SkiffError]] = {
    "not-found": NotFound,
    "conflict": Conflict,
    "invalid": InvalidArgument,
}


class RuntimeFailed(SkiffError):
    """The runtime failed for a reason of the system (kind "system")."""


def _error(stderr: bytes, argv: list[str], code: int) -> SkiffError:
    kind, message = "system", ""
    for line in reversed(stderr.decode(errors="replace").splitlines()):
        try:
            entry = json.loads(line)
        except ValueError:
            if not message and line.strip():
                message = line.strip()
            continue
        if isinstance(entry, dict) and entry.get("level") == "error":
            kind = str(entry.get("kind", "system"))
            message = str(entry.get("msg", ""))
            break
    cls = _KINDS.get(kind, RuntimeFailed)
    return cls(message or f"{' '.join(argv)} exited with {code}")


@dataclass
class Runtime:
    """One runtime binary and state root."""

    root: str = DEFAULT_ROOT
    binary: Path = field(default_factory=find_runtime)

    def _argv(self, *args: str) -> list[str]:
        return [str(self.binary), "--root", self.root, "--log-format", "json", *args]

    def call(self, *args: str, input: bytes | None = None, timeout: float = 60) -> bytes:
        argv = self._argv(*args)
        proc = subprocess.run(argv, input=input, capture_output=True, timeout=timeout)
        if proc.returncode != 0:
            raise _error(proc.stderr, argv, proc.returncode)
        return proc.stdout

    def create(
        self,
        container_id: str,
        bundle: Path,
        *,
        pid_file: Path | None = None,
        console_socket: Path | None = None,
        no_pivot: bool = False,
    ) -> None:
        args = ["create", "--bundle", str(bundle)]
        if pid_file is not None:
            args += ["--pid-file", str(pid_file)]
        if console_socket is not None:
            args += ["--console-socket", str(console_socket)]
        if no_pivot:
            args.append("--no-pivot")
        self.call(*args, container_id)

    def start(self, container_id: str) -> None:
        self.call("start", container_id)

    def state(self, container_id: str) -> dict[str, Any]:
        result: dict[str, Any] = json.loads(self.call("state", container_id))
        return result

    def kill(self, container_id: str, signal: str = "TERM", *, all: bool = False) -> None:
        self.call("kill", *(["--all"] if all else []), container_id, signal)

    def delete(self, container_id: str, *, force: bool = False) -> None:
        self.call("delete", *(["--force"] if force else []), container_id)

    def pause(self, container_id: str) -> None:
        self.call("pause", container_id)

    def resume(self, container_id: str) -> None:
        self.call("resume", container_id)

    def list(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = json.loads(self.call("list", "--format", "json") or b"[]")
        return result

    def pids(self, container_id: str) -> list[int]:
        result: list[int] = json.loads(self.call("ps", "--format", "json", container_id))
        return result

    def update(self, container_id: str, resources: dict[str, Any]) -> None:
        self.call("update", "--resources", "-", container_id, input=json.dumps(resources).encode())

    def exec(
        self,
        container_id: str,
        process: dict[str, Any],
        *,
        detach: bool = False,
        pid_file: Path | None = None,
        timeout: float = 60,
    ) -> subprocess.CompletedProcess[bytes]:
        """Runs a process in the container; returns its output and exit status
        (the runtime's own failures raise)."""
        import tempfile

        with tempfile.NamedTemporaryFile("w", suffix=".json") as f:
            json.dump(process, f)
            f.flush()
            args = ["exec", "--process", f.name]
            if detach:
                args.append("--detach")
            if pid_file is not None:
                args += ["--pid-file", str(pid_file)]
            return subprocess.run(
                self._argv(*args, container_id), capture_output=True, timeout=timeout
            )

    def run(
        self, container_id: str, bundle: Path, *, timeout: float = 60
    ) -> subprocess.CompletedProcess[bytes]:
        """Create, start, wait and delete; returns the container's output and status."""
        return subprocess.run(
            self._argv("run", "--bundle", str(bundle), container_id),
            capture_output=True,
            timeout=timeout,
        )
