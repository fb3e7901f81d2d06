"""The skiff CLI as a user runs it: a subprocess against a real daemon."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from skiff.version import __version__
from tests.support.daemon import RunningDaemon

SKIFF = [sys.executable, "-m", "skiff.cli"]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DOCKER_HOST", "SKIFF_HOST")}
    env.update(extra)
    return env


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*SKIFF, *args], capture_output=True, text=True, env=env or _env(), timeout=60
    )


def test_version_flag() -> None:
    for flag in ("--version", "-v"):
        out = run(flag)
        assert out.returncode == 0
        assert out.stdout == f"Skiff version {__version__}\n"


def test_version_talks_to_the_daemon(skiffd: RunningDaemon) -> None:
    out = run("-H", skiffd.host, "version")
    assert out.returncode == 0, out.stderr
    client, server = out.stdout.split("\n\n")
    assert f" Version:           {__version__}" in client
    assert server.startswith("Server: Skiff Engine")
    assert "API version:      1.51 (minimum version 1.40)" in server


def test_version_format_as_docker_names_the_fields(skiffd: RunningDaemon) -> None:
    out = run("-H", skiffd.host, "version", "--format", "{{.Server.Version}} {{.Client.Version}}")
    assert out.returncode == 0, out.stderr
    assert out.stdout == f"{__version__} {__version__}\n"
    out = run("-H", skiffd.host, "version", "-f", "{{.Server.ApiVersion}}/{{.Client.Os}}")
    assert out.stdout == "1.51/linux\n", out.stderr
    out = run("-H", skiffd.host, "version", "--format", "json")
    value = json.loads(out.stdout)
    assert value["Client"]["ApiVersion"] == "1.51" and value["Server"]["ApiVersion"] == "1.51"
    # No daemon: the client's part, the error, exit 1 (as docker).
    out = run("-H", "unix:///nonexistent/skiff.sock", "version", "-f", "{{.Client.Version}}")
    assert out.returncode == 1 and out.stdout == f"{__version__}\n"
    assert "Cannot connect" in out.stderr and "Traceback" not in out.stderr


def test_host_chosen_by_environment(skiffd: RunningDaemon) -> None:
    for env in (_env(SKIFF_HOST=skiffd.host), _env(DOCKER_HOST=skiffd.host)):
        out = run("version", env=env)
        assert out.returncode == 0, out.stderr
        assert "Server: Skiff Engine" in out.stdout
    # SKIFF_HOST wins over DOCKER_HOST, and -H over both.
    bad = "unix:///nonexistent/skiff.sock"
    assert run("version", env=_env(SKIFF_HOST=skiffd.host, DOCKER_HOST=bad)).returncode == 0
    assert run("-H", skiffd.host, "version", env=_env(SKIFF_HOST=bad)).returncode == 0
    assert run("version", env=_env(SKIFF_HOST=bad, DOCKER_HOST=skiffd.host)).returncode == 1


def test_version_without_a_daemon_says_so() -> None:
    out = run("-H", "unix:///nonexistent/skiff.sock", "version")
    assert out.returncode == 1
    assert out.stdout.startswith("Client:")
    assert "Cannot connect to the Skiff daemon at unix:///nonexistent/skiff.sock" in out.stderr
    assert "Traceback" not in out.stderr


def test_bad_usage_is_one_line_and_125() -> None:
    out = run("-H", "ftp://nowhere", "version")
    assert out.returncode == 125
    assert "unsupported scheme" in out.stderr and "Traceback" not in out.stderr
    out = run("no-such-command")
    assert out.returncode == 125 and "No such command" in out.stderr
