"""The daemon's HTTP layer and router, driven over a real socket pair."""

from __future__ import annotations

import asyncio
import json

import pytest

from skiff.daemon.app import Router, check_api_version, compile_pattern
from skiff.daemon.http import (
    BadRequest,
    HTTPServer,
    Request,
    Response,
    StreamResponse,
    json_response,
    parse_head,
)
from skiff.errors import InvalidArgument, NotFound


def _reader(data: bytes = b"") -> asyncio.StreamReader:
    reader = asyncio.StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    return reader


def test_parse_head() -> None:
    async def go() -> None:
        head = (
            b"POST /v1.45/containers/create?name=web&x=1&x=2 HTTP/1.1\r\n"
            b"Host: d\r\nContent-Length: 2\r\n\r\n"
        )
        req = parse_head(head, _reader(b"{}"))
        assert (req.method, req.path) == ("POST", "/v1.45/containers/create")
        assert req.arg("name") == "web" and req.query["x"] == ["1", "2"]
        assert await req.json() == {}

    asyncio.run(go())


@pytest.mark.parametrize(
    "head",
    [
        b"GARBAGE\r\n\r\n",
        b"GET / HTTP/2.0\r\n\r\n",
        b"GET / HTTP/1.1\r\nno-colon-here\r\n\r\n",
        b"GET / HTTP/1.1\r\nContent-Length: -3\r\n\r\n",
        b"GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n",
    ],
)
def test_parse_head_rejects(head: bytes) -> None:
    async def go() -> None:
        with pytest.raises(BadRequest):
            parse_head(head, _reader())

    asyncio.run(go())


def test_chunked_body() -> None:
    async def go() -> None:
        head = b"POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
        req = parse_head(head, _reader(b"3\r\nabc\r\n2;ext=1\r\nde\r\n0\r\n\r\n"))
        assert await req.body.read() == b"abcde"

    asyncio.run(go())


def test_flag_parsing() -> None:
    async def go() -> None:
        req = parse_head(b"GET /x?a=1&b=0&c=true&d=False&e= HTTP/1.1\r\n\r\n", _reader())
        assert [req.flag(k) for k in "abcde"] == [True, False, True, False, False]
        assert req.flag("missing", default=True)

    asyncio.run(go())


def test_patterns() -> None:
    rx = compile_pattern("/images/{name:.+}/json")
    m = rx.match("/images/docker.io/library/busybox:latest/json")
    assert m and m.group("name") == "docker.io/library/busybox:latest"
    assert compile_pattern("/containers/{id}/json").match("/containers/a/b/json") is None


def test_api_version_range() -> None:
    assert check_api_version("1.40") == "1.40"
    assert check_api_version("1.51") == "1.51"
    with pytest.raises(InvalidArgument, match="too old"):
        check_api_version("1.39")
    with pytest.raises(InvalidArgument, match="too new"):
        check_api_version("1.52")
    with pytest.raises(InvalidArgument):
        check_api_version("one.two")


async def _serve(router: Router, raw: bytes) -> bytes:
    """Sends raw bytes to a real server on a socket pair; returns all it answers."""
    import socket

    server = HTTPServer(router.dispatch, {"Api-Version": "1.51"})
    ours, theirs = socket.socketpair()
    reader, writer = await asyncio.open_connection(sock=ours)
    task = asyncio.create_task(server._on_connection(reader, writer))
    cr, cw = await asyncio.open_connection(sock=theirs)
    cw.write(raw)
    await cw.drain()
    cw.write_eof()
    out = await asyncio.wait_for(cr.read(), 5)
    cw.close()
    await task
    return out


def test_router_versions_keepalive_and_errors() -> None:
    async def found(req: Request) -> Response:
        return json_response({"path": req.path, "v": req.api_version, "id": req.params.get("id")})

    async def missing(req: Request) -> Response:
        raise NotFound("No such container: x")

    async def stream(req: Request) -> StreamResponse:
        async def gen():  # type: ignore[no-untyped-def]
            for i in range(3):
                yield f'{{"n":{i}}}\n'.encode()

        return StreamResponse(gen())

    router = Router(
        [("GET", "/c/{id}/json", found), ("GET", "/missing", missing), ("GET", "/stream", stream)]
    )
    raw = (
        b"GET /v1.44/c/abc/json HTTP/1.1\r\n\r\n"
        b"GET /c/abc/json HTTP/1.1\r\n\r\n"
        b"GET /missing HTTP/1.1\r\n\r\n"
        b"GET /v1.10/c/abc/json HTTP/1.1\r\n\r\n"
        b"GET /stream HTTP/1.1\r\n\r\n"
        b"GET /nope HTTP/1.1\r\nConnection: close\r\n\r\n"
    )
    out = asyncio.run(_serve(router, raw)).decode()
    parts = out.split("HTTP/1.1 ")[1:]
    statuses = [p.split(" ", 1)[0] for p in parts]
    assert statuses == ["200", "200", "404", "400", "200", "404"]
    bodies = [p.split("\r\n\r\n", 1)[1] for p in parts]
    assert json.loads(bodies[0]) == {"path": "/c/abc/json", "v": "1.44", "id": "abc"}
    assert json.loads(bodies[1])["v"] == "1.51"
    assert json.loads(bodies[2]) == {"message": "No such container: x"}
    assert "too old" in bodies[3]
    assert "Transfer-Encoding: chunked" in parts[4]
    assert bodies[4] == '8\r\n{"n":0}\n\r\n8\r\n{"n":1}\n\r\n8\r\n{"n":2}\n\r\n0\r\n\r\n'
    assert json.loads(bodies[5]) == {"message": "page not found"}
    assert all("Api-Version: 1.51" in p for p in parts)


def test_malformed_request_gets_400_and_close() -> None:
    out = asyncio.run(_serve(Router([]), b"NONSENSE\r\n\r\n")).decode()
    assert out.startswith("HTTP/1.1 400 ")
    assert "Connection: close" in out


def test_a_single_chunk_stream_ends_in_the_write_of_its_chunk() -> None:
    """A wait on a running container: the head at once, then its one chunk and the
    end of the answer together (the client wakes once for them)."""

    async def go() -> list[bytes]:
        import socket

        release = asyncio.Event()

        async def wait(req: Request) -> StreamResponse:
            async def gen():  # type: ignore[no-untyped-def]
                await release.wait()
                yield b'{"StatusCode":0}\n'

            return StreamResponse(gen(), single=True)

        server = HTTPServer(Router([("POST", "/wait", wait)]).dispatch, {})
        ours, theirs = socket.socketpair()
        reader, writer = await asyncio.open_connection(sock=ours)
        writes: list[bytes] = []
        transport_write = writer.transport.write

        def recorded(data: bytes) -> None:  # type: ignore[override]
            writes.append(bytes(data))
            transport_write(data)

        writer.transport.write = recorded  # type: ignore[method-assign]
        task = asyncio.create_task(server._on_connection(reader, writer))
        cr, cw = await asyncio.open_connection(sock=theirs)
        cw.write(b"POST /wait HTTP/1.1\r\nConnection: close\r\n\r\n")
        await cw.drain()
        head = await asyncio.wait_for(cr.readuntil(b"\r\n\r\n"), 5)
        assert b"Transfer-Encoding: chunked" in head
        release.set()
        rest = await asyncio.wait_for(cr.read(), 5)
        assert rest == b'11\r\n{"StatusCode":0}\n\r\n0\r\n\r\n'
        cw.close()
        await task
        return writes

    writes = asyncio.run(go())
    assert len(writes) == 2 and writes[1] == b'11\r\n{"StatusCode":0}\n\r\n0\r\n\r\n'
