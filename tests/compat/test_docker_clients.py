"""Docker's own clients, unchanged, against skiffd."""

from __future__ import annotations

import json
import shutil
import subprocess

import docker
import pytest

from skiff.version import API_VERSION, __version__
from tests.support.daemon import RunningDaemon

DOCKER = shutil.which("docker")


def docker_cli(daemon: RunningDaemon, *args: str) -> str:
    """Runs the real docker CLI against ``daemon``; returns its stdout."""
    assert DOCKER is not None
    out = subprocess.run(
        [DOCKER, *args], capture_output=True, text=True, env=daemon.env(), timeout=60
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


@pytest.mark.skipif(DOCKER is None, reason="the docker CLI is not installed")
def test_docker_cli_version(skiffd: RunningDaemon) -> None:
    server = json.loads(docker_cli(skiffd, "version", "--format", "{{json .Server}}"))
    assert server["Version"] == __version__
    assert server["Platform"]["Name"] == "Skiff Engine"
    assert server["MinAPIVersion"] == "1.40"


@pytest.mark.skipif(DOCKER is None, reason="the docker CLI is not installed")
def test_docker_cli_negotiates_down_to_its_version(skiffd: RunningDaemon) -> None:
    out = docker_cli(skiffd, "version", "--format", "{{.Client.APIVersion}} {{.Server.APIVersion}}")
    client_api, server_api = out.split()
    assert server_api == API_VERSION
    assert tuple(map(int, client_api.split("."))) <= (1, 51)


def test_docker_py_ping_and_version(skiffd: RunningDaemon) -> None:
    client = docker.DockerClient(base_url=skiffd.host, version="auto")
    try:
        assert client.ping() is True
        version = client.version()
        assert version["ApiVersion"] == API_VERSION
        assert version["Version"] == __version__
        assert client.api.api_version == API_VERSION
    finally:
        client.close()
