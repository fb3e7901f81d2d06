"""What the clients cost by themselves: the engine benches' own clients (docker-py, the
docker CLI) against a stand-in Engine API server that answers at once, without
making anything (an Id for a create, 204 for a start, exit 0 for a wait).

A measuring instrument, not a test: it shows the part of a goal that no daemon can
take away on this machine (the goals count the client's time too). The stand-in
runs in a process of its own, on asyncio streams, like a small daemon would.

Run as ``python _client_floor.py SOCKET`` it serves on SOCKET until killed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator

HEADERS = "Api-Version: 1.51\r\nDocker-Experimental: false\r\nOstype: linux\r\nServer: floor\r\n"
VERSION = {"ApiVersion": "1.51", "MinAPIVersion": "1.24", "Version": "28.0.0", "Os": "linux"}


def _answer(method: str, path: str) -> tuple[str, bytes]:
    route = path.split("?", 1)[0]
    if route.endswith("/_ping"):
        return "200 OK", b"OK"
    if route.endswith("/version"):
        return "200 OK", json.dumps(VERSION).encode()
    if route.endswith("/containers/create"):
        return "201 Created", json.dumps({"Id": secrets.token_hex(32), "Warnings": []}).encode()
    if route.endswith("/wait"):
        return "200 OK", b'{"StatusCode":0,"Error":null}\n'
    return "204 No Content", b""


async def _serve_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, path, _ = lines[0].split(" ", 2)
            length = 0
            for line in lines[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value)
            if length:
                await reader.readexactly(length)
            status, body = _answer(method, path)
            kind = "Content-Type: application/json\r\n" if body else ""
            writer.write(
                f"HTTP/1.1 {status}\r\n{HEADERS}{kind}Content-Length: {len(body)}\r\n\r\n".encode()
                + (b"" if method == "HEAD" else body)
            )
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def _serve(path: str) -> None:
    server = await asyncio.start_unix_server(_serve_connection, path)
    async with server:
        await server.serve_forever()


@contextlib.contextmanager
def stand_in() -> Iterator[str]:
    """A stand-in server in a process of its own; yields its ``unix://`` host."""
    with tempfile.TemporaryDirectory(prefix="skiff-floor-") as d:
        sock = os.path.join(d, "api.sock")
        proc = subprocess.Popen([sys.executable, __file__, sock])
        try:
            deadline = time.monotonic() + 10
            while not os.path.exists(sock):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the stand-in API server did not start")
                time.sleep(0.01)
            yield f"unix://{sock}"
        finally:
            proc.kill()
            proc.wait()


if __name__ == "__main__":
    asyncio.run(_serve(sys.argv[1]))
