"""A small HTTP/1.1 server on asyncio streams, made for the Docker Engine API.

Why not a framework: the Engine API needs what general servers make awkward — answering
``101 UPGRADED`` and then carrying raw bytes both ways with a *half-closed* socket
(``docker run -i`` shuts its write side when stdin ends and still reads output),
long chunked streams (logs, events, pull progress), and request bodies streamed
straight into the image store. All of that is a few lines on asyncio streams.

Handlers take a :class:`Request` and return a :class:`Response`, a
:class:`StreamResponse` (chunked, flushed per chunk) or a :class:`Hijack`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from skiff import jsontext
from skiff.engine.fdio import send
from skiff.errors import InvalidArgument, SkiffError, http_status

log = logging.getLogger("skiff.daemon.http")

MAX_HEAD = 64 * 1024
READ_CHUNK = 256 * 1024

REASONS = {
    100: "Continue",
    101: "UPGRADED",
    200: "OK",
    201: "Created",
    204: "No Content",
    304: "Not Modified",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    411: "Length Required",
    413: "Payload Too Large",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    501: "Not Implemented",
    503: "Service Unavailable",
}


class BadRequest(InvalidArgument):
    """The bytes on the wire are not a request we can read."""


class Body:
    """A request body, read on demand: whole, or as a stream of chunks."""

    def __init__(self, reader: asyncio.StreamReader, length: int | None, chunked: bool) -> None:
        self._reader = reader
        self._remaining = length or 0
        self._chunked = chunked
        self._done = not chunked and not length

    async def chunks(self) -> AsyncIterator[bytes]:
        while not self._done:
            data = await self._next()
            if data:
                yield data

    async def read(self) -> bytes:
        return b"".join([c async for c in self.chunks()])

    async def drain(self) -> None:
        async for _ in self.chunks():
            pass

    async def _next(self) -> bytes:
        if self._chunked:
            return await self._next_chunk()
        data = await self._reader.read(min(self._remaining, READ_CHUNK))
        if not data:
            raise BadRequest("request body ended early")
        self._remaining -= len(data)
        self._done = self._remaining == 0
        return data

    async def _next_chunk(self) -> bytes:
        line = await self._reader.readline()
        size_text = line.split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise BadRequest(f"bad chunk size {size_text!r}") from None
        if size == 0:
            # Trailers end with an empty line.
            while (await self._reader.readline()).strip():
                pass
            self._done = True
            return b""
        data = await self._reader.readexactly(size)
        await self._reader.readexactly(2)
        return data


@dataclass
class Request:
    method: str
    path: str  # without the /v1.NN prefix
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-case names
    body: Body
    api_version: str = ""
    params: dict[str, str] = field(default_factory=dict)  # from the route pattern
    http10: bool = False

    def arg(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[-1] if values else default

    def flag(self, name: str, default: bool = False) -> bool:
        """A boolean query parameter as docker sends them: 1/true/yes, 0/false/no."""
        value = self.arg(name)
        if value is None or value == "":
            return default
        return value.lower() not in ("0", "false", "no")

    async def json(self) -> Any:
        raw = await self.body.read()
        if not raw.strip():
            return None
        try:
            return jsontext.loads(raw)
        except ValueError as err:
            raise InvalidArgument(f"invalid JSON body: {err}") from None

    @property
    def wants_upgrade(self) -> bool:
        return "upgrade" in self.headers.get("connection", "").lower()


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


def json_response(obj: Any, status: int = 200) -> Response:
    return Response(status, jsontext.dumps(obj) + b"\n")


def error_response(status: int, message: str) -> Response:
    return json_response({"message": message}, status)


@dataclass
class StreamResponse:
    """A chunked answer; each item of ``chunks`` is sent and flushed at once.
    ``single``: ``chunks`` gives one item, sent with the end of the answer in one
    write (one wake-up of the client, not two)."""

    chunks: AsyncIterator[bytes]
    status: int = 200
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    single: bool = False


@dataclass
class Hijack:
    """Answer ``101 UPGRADED`` (or 200 for clients that did not ask to upgrade), then
    hand the raw connection to ``run``; the connection is closed when it returns."""

    run: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
    content_type: str = "application/vnd.docker.raw-stream"


Answer = Response | StreamResponse | Hijack
Handler = Callable[[Request], Awaitable[Answer]]
#: Builds the answer for a request; raises SkiffError for failures.
Dispatch = Callable[[Request], Awaitable[Answer]]


class HTTPServer:
    """Serves ``dispatch`` on any number of listening sockets."""

    def __init__(self, dispatch: Dispatch, common_headers: dict[str, str]) -> None:
        self._dispatch = dispatch
        self._common = common_headers
        self._servers: list[asyncio.Server] = []
        self._connections: set[asyncio.Task[None]] = set()

    async def listen_unix(self, path: str) -> None:
        server = await asyncio.start_unix_server(self._on_connection, path=path, limit=MAX_HEAD)
        self._servers.append(server)

    async def listen_tcp(self, host: str, port: int, ssl: Any) -> None:
        server = await asyncio.start_server(
            self._on_connection, host=host, port=port, limit=MAX_HEAD, ssl=ssl
        )
        self._servers.append(server)

    async def close(self, grace: float = 2.0) -> None:
        """Stops listening, lets requests in flight finish for ``grace`` seconds, then
        cancels the rest (streams such as event or log follows)."""
        for server in self._servers:
            server.close()
        if self._connections:
            _, pending = await asyncio.wait(self._connections, timeout=grace)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        for server in self._servers:
            await server.wait_closed()

    async def _on_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            while await self._serve_one(reader, writer):
                pass
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self._connections.discard(task)
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()

    async def _serve_one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """Serves one request; returns whether the connection stays open."""
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as err:
            if err.partial.strip():
                await self._write(writer, error_response(400, "incomplete request"), "GET", False)
            return False
        except asyncio.LimitOverrunError:
            await self._write(writer, error_response(431, "request header too large"), "GET", False)
            return False
        try:
            request = parse_head(head, reader)
        except BadRequest as err:
            await self._write(writer, error_response(400, str(err)), "GET", False)
            return False

        keep_alive = not request.http10 and request.headers.get("connection", "").lower() != "close"
        if request.headers.get("expect", "").lower() == "100-continue":
            await send(writer, b"HTTP/1.1 100 Continue\r\n\r\n")

        try:
            answer = await self._dispatch(request)
        except SkiffError as err:
            answer = error_response(http_status(err), err.message)
        except Exception as err:  # a bug: answer 500, keep the daemon up, log it
            log.exception("%s %s failed", request.method, request.path)
            answer = error_response(500, f"internal error: {err}")

        if isinstance(answer, Hijack):
            await self._hijack(request, answer, reader, writer)
            return False
        # Whatever the handler did not read must go before the next request.
        try:
            await request.body.drain()
        except (BadRequest, asyncio.IncompleteReadError):
            keep_alive = False
        return await self._write(writer, answer, request.method, keep_alive)

    def _head(self, status: int, headers: dict[str, str]) -> bytes:
        lines = [f"HTTP/1.1 {status} {REASONS.get(status, 'Unknown')}"]
        for name, value in {**self._common, **headers}.items():
            lines.append(f"{name}: {value}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    async def _write(
        self,
        writer: asyncio.StreamWriter,
        answer: Response | StreamResponse,
        method: str,
        keep_alive: bool,
    ) -> bool:
        conn = "keep-alive" if keep_alive else "close"
        if isinstance(answer, Response):
            headers = {"Content-Type": answer.content_type, **answer.headers, "Connection": conn}
            # HEAD answers carry the headers a GET would, and no body.
            headers.setdefault("Content-Length", str(len(answer.body)))
            head = self._head(answer.status, headers)
            # One write: the client wakes once, with the whole answer.
            if method != "HEAD" and answer.status not in (204, 304):
                await send(writer, head + answer.body)
            else:
                await send(writer, head)
            return keep_alive
        headers = {
            "Content-Type": answer.content_type,
            **answer.headers,
            "Transfer-Encoding": "chunked",
            "Connection": conn,
        }
        await send(writer, self._head(answer.status, headers))
        end = b"0\r\n\r\n"
        try:
            async for chunk in answer.chunks:
                if answer.single:
                    end = (b"%x\r\n%b\r\n" % (len(chunk), chunk) if chunk else b"") + end
                    break
                if chunk:
                    await send(writer, b"%x\r\n%b\r\n" % (len(chunk), chunk))
        finally:
            aclose = getattr(answer.chunks, "aclose", None)
            if aclose is not None:
                await aclose()
        await send(writer, end)
        return keep_alive

    async def _hijack(
        self,
        request: Request,
        answer: Hijack,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        if request.wants_upgrade:
            headers = {
                "Content-Type": answer.content_type,
                "Connection": "Upgrade",
                "Upgrade": "tcp",
            }
            head = self._head(101, headers)
        else:
            # Old clients: a plain 200 and then the raw stream, as dockerd does.
            head = self._head(200, {"Content-Type": answer.content_type})
        await send(writer, head)
        await answer.run(reader, writer)


def parse_head(head: bytes, reader: asyncio.StreamReader) -> Request:
    """Parses a request line and headers (everything up to the blank line)."""
    try:
        text = head.decode("latin-1")
    except UnicodeDecodeError:  # pragma: no cover - latin-1 decodes every byte
        raise BadRequest("undecodable request head") from None
    lines = text.split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise BadRequest(f"malformed request line {lines[0][:100]!r}")
    method, target, version = parts
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, colon, value = line.partition(":")
        if not colon or not name or name != name.strip():
            raise BadRequest(f"malformed header line {line[:100]!r}")
        headers[name.lower()] = value.strip()

    chunked = "chunked" in headers.get("transfer-encoding", "").lower()
    length: int | None = None
    if not chunked and "content-length" in headers:
        try:
            length = int(headers["content-length"])
        except ValueError:
            raise BadRequest("bad Content-Length") from None
        if length < 0:
            raise BadRequest("bad Content-Length")

    split = urlsplit(target)
    return Request(
        method=method.upper(),
        path=unquote(split.path),
        query=parse_qs(split.query, keep_blank_values=True),
        headers=headers,
        body=Body(reader, length, chunked),
        http10=version == "HTTP/1.0",
    )
