"""skiffd on TCP: only with TLS and verified client certificates, like dockerd's
--tlsverify; the docker CLI with its certificates gets in, without them it does not."""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.daemon import RunningDaemon
from tests.support.engine import DOCKER
from tests.support.tls import make_ca, make_cert

pytestmark = pytest.mark.skipif(DOCKER is None, reason="the docker CLI is not installed")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_tcp_needs_tls_with_client_certificates(
    daemon_factory: Callable[..., RunningDaemon], tmp_path: Path
) -> None:
    ca, _ = make_ca(tmp_path)
    server_crt, server_key = make_cert(tmp_path, "server", ip="127.0.0.1")
    client_crt, client_key = make_cert(tmp_path, "client", client=True)
    port = free_port()
    daemon_factory(
        "-H",
        f"tcp://127.0.0.1:{port}",
        "--tlsverify",
        "--tlscacert",
        str(ca),
        "--tlscert",
        str(server_crt),
        "--tlskey",
        str(server_key),
    )
    assert DOCKER is not None
    base = [DOCKER, "-H", f"tcp://127.0.0.1:{port}"]
    ok = subprocess.run(
        [
            *base,
            "--tlsverify",
            "--tlscacert",
            str(ca),
            "--tlscert",
            str(client_crt),
            "--tlskey",
            str(client_key),
            "version",
            "--format",
            "{{.Server.Platform.Name}}",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.strip() == "Skiff Engine"
    # Trusting the server is not enough: the daemon wants a client certificate.
    no_cert = subprocess.run(
        [*base, "--tls", "--tlscacert", str(ca), "version"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert no_cert.returncode != 0
    plain = subprocess.run([*base, "version"], capture_output=True, text=True, timeout=30)
    assert plain.returncode != 0


def test_tcp_without_tls_is_refused(daemon_factory: Callable[..., RunningDaemon]) -> None:
    with pytest.raises(AssertionError, match="TLS"):
        daemon_factory("-H", f"tcp://127.0.0.1:{free_port()}")
