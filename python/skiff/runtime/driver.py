"""Driving skiff-runtime (or any runc-compatible runtime) by exec'ing it.

Each call runs the binary with ``--log-format json``; an error becomes the
``skiff.errors`` class named by the ``kind`` field of its last log line (so nothing
here reads message text), with the runtime's message.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

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


def _error(log_text: str, argv: list[str], code: int) -> SkiffError:
    """The error named by the last error line of the runtime's JSON log."""
    kind, message = "system", ""
    for line in reversed(log_text.splitlines()):
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and entry.get("level") == "error":
            kind = str(entry.get("kind", "system"))
            message = str(entry.get("msg", ""))
            break
    cls = _KINDS.get(kind, RuntimeFailed)
    return cls(message or f"{' '.join(argv)} exited with {code}")


#: What a container started by ``create`` or ``exec --detach`` gets as stdio when the
#: caller names none: it must not inherit pipes the caller waits on.
Stdio = int | IO[bytes] | None


@dataclass
class Runtime:
    """One runtime binary and state root."""

    root: str = DEFAULT_ROOT
    binary: Path = field(default_factory=find_runtime)

    def _invoke(
        self,
        args: tuple[str, ...],
        *,
        container_exit_ok: bool,
        input: bytes | None = None,
        timeout: float = 60,
        stdout: Stdio = subprocess.PIPE,
        stderr: Stdio = subprocess.DEVNULL,
        stdin: Stdio = None,
    ) -> subprocess.CompletedProcess[bytes]:
        """Runs the runtime with a JSON log of its own. A failure raises the SkiffError
        its last error line names — unless ``container_exit_ok`` (run, exec) and the
        log has no error: then the non-zero status is the container's own."""
        with tempfile.NamedTemporaryFile(prefix="skiff-runtime-", suffix=".log") as log:
            argv = [str(self.binary), "--root", self.root, "--log", log.name]
            argv += ["--log-format", "json", *args]
            proc = subprocess.run(
                argv,
                input=input,
                stdin=subprocess.DEVNULL if input is None and stdin is None else stdin,
                stdout=stdout,
                stderr=stderr,
                timeout=timeout,
            )
            if proc.returncode != 0:
                text = Path(log.name).read_text(errors="replace")
                if not container_exit_ok or '"level":"error"' in text:
                    raise _error(text, argv, proc.returncode)
        return proc

    def call(
        self,
        *args: str,
        input: bytes | None = None,
        timeout: float = 60,
        stdout: Stdio = subprocess.PIPE,
        stderr: Stdio = subprocess.DEVNULL,
    ) -> subprocess.CompletedProcess[bytes]:
        """Runs a runtime command; its errors raise SkiffError."""
        return self._invoke(
            args,
            container_exit_ok=False,
            input=input,
            timeout=timeout,
            stdout=stdout,
            stderr=stderr,
        )

    def create(
        self,
        container_id: str,
        bundle: Path,
        *,
        pid_file: Path | None = None,
        console_socket: Path | None = None,
        no_pivot: bool = False,
        stdout: Stdio = subprocess.DEVNULL,
        stderr: Stdio = subprocess.DEVNULL,
    ) -> None:
        """Creates the container; its init gets ``stdout``/``stderr`` (default
        /dev/null) and /dev/null as stdin."""
        args = ["create", "--bundle", str(bundle)]
        if pid_file is not None:
            args += ["--pid-file", str(pid_file)]
        if console_socket is not None:
            args += ["--console-socket", str(console_socket)]
        if no_pivot:
            args.append("--no-pivot")
        self.call(*args, container_id, stdout=stdout, stderr=stderr)

    def start(self, container_id: str) -> None:
        self.call("start", container_id)

    def state(self, container_id: str) -> dict[str, Any]:
        result: dict[str, Any] = json.loads(self.call("state", container_id).stdout)
        return result

    def kill(self, container_id: str, signal: str = "TERM", *, all: bool = False) -> None:
        self.call("kill", *(["--all"] if all else []), container_id, signal)

    def delete(self, container_id: str, *, force: bool = False) -> None:
        self.call("delete", *(["--force"] if force else []), container_id)

    def pause(self, container_id: str) -> None:
        self.call("pause", container_id)

    def resume(self, container_id: str) -> None:
        self.call("resume", container_id)

    def containers(self) -> list[dict[str, Any]]:
        """``list --format json``: every container under this root."""
        result: list[dict[str, Any]] = json.loads(
            self.call("list", "--format", "json").stdout or b"[]"
        )
        return result

    def pids(self, container_id: str) -> list[int]:
        result: list[int] = json.loads(self.call("ps", "--format", "json", container_id).stdout)
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
        """Runs a process in the container and returns its output and exit status;
        the runtime's own failures raise. A detached process gets /dev/null stdio."""
        with tempfile.NamedTemporaryFile("w", suffix=".json") as f:
            json.dump(process, f)
            f.flush()
            args = ["exec", "--process", f.name]
            if detach:
                args.append("--detach")
            if pid_file is not None:
                args += ["--pid-file", str(pid_file)]
            out = subprocess.DEVNULL if detach else subprocess.PIPE
            return self._run_container(*args, container_id, stdout=out, timeout=timeout)

    def run(
        self, container_id: str, bundle: Path, *, timeout: float = 60
    ) -> subprocess.CompletedProcess[bytes]:
        """Create, start, wait and delete; returns the container's output and status.
        The runtime's own failures raise."""
        return self._run_container("run", "--bundle", str(bundle), container_id, timeout=timeout)

    def _run_container(
        self, *args: str, stdout: Stdio = subprocess.PIPE, timeout: float = 60
    ) -> subprocess.CompletedProcess[bytes]:
        """run / exec: the container's output and exit status; runtime failures raise."""
        return self._invoke(
            args, container_exit_ok=True, timeout=timeout, stdout=stdout, stderr=subprocess.PIPE
        )
