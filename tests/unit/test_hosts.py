from __future__ import annotations

import pytest

from skiff.errors import InvalidArgument
from skiff.hosts import DEFAULT_SOCKET, Host, client_host, parse_host


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("unix:///run/x.sock", Host("unix", path="/run/x.sock")),
        ("/run/x.sock", Host("unix", path="/run/x.sock")),
        ("tcp://127.0.0.1:2376", Host("tcp", hostname="127.0.0.1", port=2376)),
        ("tcp://localhost", Host("tcp", hostname="localhost", port=2375)),
        ("tcp://[::1]:2376/", Host("tcp", hostname="::1", port=2376)),
    ],
)
def test_parse_host(text: str, expected: Host) -> None:
    assert parse_host(text) == expected


@pytest.mark.parametrize(
    "text", ["", "unix://relative", "http://x", "tcp://:12", "tcp://h:0", "tcp://h:x", "foo"]
)
def test_parse_host_rejects(text: str) -> None:
    with pytest.raises(InvalidArgument):
        parse_host(text)


def test_client_host_precedence() -> None:
    env = {"DOCKER_HOST": "unix:///docker.sock", "SKIFF_HOST": "unix:///skiff.sock"}
    assert client_host("unix:///flag.sock", env).path == "/flag.sock"
    assert client_host(None, env).path == "/skiff.sock"
    assert client_host(None, {"DOCKER_HOST": "unix:///docker.sock"}).path == "/docker.sock"
    assert client_host(None, {}).path == DEFAULT_SOCKET
    assert str(client_host(None, {})) == f"unix://{DEFAULT_SOCKET}"
