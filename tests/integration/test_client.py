"""The API client against a real skiffd: the version ping sent ahead, and requests in
flight together on connections of their own (what ``skiff run`` does)."""

from __future__ import annotations

import pytest

from skiff.cli.streams import demux
from skiff.client import APIClient
from skiff.errors import NotFound, Unavailable
from skiff.hosts import parse_host
from skiff.version import API_VERSION
from tests.support.daemon import RunningDaemon


def test_ping_ahead_is_the_negotiation(skiffd: RunningDaemon) -> None:
    with skiffd.client() as client:
        client.ping_ahead()
        # the next request reads the ping's answer first, then goes on the same connection
        assert client.version()["ApiVersion"] == API_VERSION
        assert client.api_version == API_VERSION
        assert client.get("/containers/json", all=True) is not None
        client.ping_ahead()  # negotiated already: nothing sent
        assert client.get("/info")["ID"]


def test_ping_ahead_then_an_unversioned_request(skiffd: RunningDaemon) -> None:
    with skiffd.client() as client:
        client.ping_ahead()
        resp = client.raw_request("GET", "/_ping")
        assert (resp.status, resp.body) == (200, b"OK")
        assert client.api_version == API_VERSION
    with skiffd.client() as client:
        client.ping_ahead()
        assert client.ping().status == 200  # the answer to the ping sent ahead
        assert client.raw_request("GET", "/_ping").body == b"OK"


def test_ping_ahead_without_a_daemon_is_quiet() -> None:
    client = APIClient(parse_host("unix:///nonexistent/skiff.sock"))
    client.ping_ahead()
    with pytest.raises(Unavailable, match="Cannot connect to the Skiff daemon"):
        client.version()


@pytest.mark.root
def test_attach_and_wait_in_flight_together(engine: RunningDaemon) -> None:
    with engine.client() as client:
        config = {
            "Image": "busybox",
            "Cmd": ["sh", "-c", "echo out; echo err >&2; exit 3"],
            "AttachStdout": True,
            "AttachStderr": True,
        }
        cid = client.post("/containers/create", config)["Id"]
        try:
            attaching = client.send_hijack(
                f"/containers/{cid}/attach", stream=True, stdout=True, stderr=True
            )
            wait = client.send_stream(
                "POST", f"/containers/{cid}/wait", params={"condition": "next-exit"}
            )
            hijacked = attaching.hijacked()
            waiting = wait.stream()
            client.request("POST", f"/containers/{cid}/start")
            frames = list(demux(hijacked.read1))
            hijacked.close()
            assert sorted(frames) == [(1, b"out\n"), (2, b"err\n")]
            assert next(waiting.json_lines())["StatusCode"] == 3
            waiting.close()
        finally:
            client.request("DELETE", f"/containers/{cid}", params={"force": True})


def test_a_pending_request_raises_its_error_answer(skiffd: RunningDaemon) -> None:
    with skiffd.client() as client:
        wait = client.send_stream("POST", "/containers/no-such-container/wait")
        with pytest.raises(NotFound):
            wait.stream()
        attaching = client.send_hijack("/containers/no-such-container/attach", stream=True)
        with pytest.raises(NotFound):
            attaching.hijacked()
        attaching.close()
