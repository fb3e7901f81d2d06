"""Attaching API clients to a container's stdio through its monitor's attach socket
(protocol: the top of rust/runtime/src/bin/skiff-monitor/main.rs).

The monitor already frames output the way the API sends it (multiplexed without a
tty, raw with one), so attaching is a byte pump both ways; the client's half-close
ends the container's stdin when the container was created with ``StdinOnce``.
"""

from __future__ import annotations

import asyncio
import contextlib

from skiff.engine.fdio import send
from skiff.engine.monitor import MonitorFiles
from skiff.errors import Conflict

CHUNK = 64 * 1024


async def _request(
    files: MonitorFiles, line: str
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    try:
        reader, writer = await asyncio.open_unix_connection(str(files.socket))
    except (FileNotFoundError, ConnectionRefusedError) as err:
        raise Conflict(f"container is not running: {err.strerror}") from None
    writer.write(line.encode() + b"\n")
    await writer.drain()
    answer = await reader.readline()
    if answer.strip() != b"ok":
        writer.close()
        raise Conflict(
            f"the container's monitor refused: {answer.decode(errors='replace').strip()}"
        )
    return reader, writer


async def connect(
    files: MonitorFiles, *, stdin: bool, stdout: bool, stderr: bool, stdin_once: bool
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    flags = [n for n, on in (("stdin", stdin), ("stdout", stdout), ("stderr", stderr)) if on]
    if stdin and stdin_once:
        flags.append("stdin-once")
    return await _request(files, "attach " + ",".join(flags))


async def resize(files: MonitorFiles, height: int, width: int) -> None:
    _, writer = await _request(files, f"resize {int(height)} {int(width)}")
    writer.close()


async def pump(
    monitor: tuple[asyncio.StreamReader, asyncio.StreamWriter],
    client: tuple[asyncio.StreamReader, asyncio.StreamWriter],
    *,
    stdin: bool,
) -> None:
    """Carries bytes until the container's output ends (it exited) or the client
    goes away."""
    m_reader, m_writer = monitor
    c_reader, c_writer = client

    async def output() -> None:
        while data := await m_reader.read(CHUNK):
            await send(c_writer, data)

    async def input() -> None:
        while data := await c_reader.read(CHUNK):
            await send(m_writer, data)
        # The client half-closed: pass it on (the monitor closes stdin if stdin-once),
        # once what is buffered is sent.
        with contextlib.suppress(OSError):
            if not m_writer.is_closing():
                m_writer.write_eof()

    out_task = asyncio.ensure_future(output())
    in_task = asyncio.ensure_future(input()) if stdin else None
    try:
        if in_task is None:
            # A client without stdin half-closes at once (docker does): that is not
            # a hang-up, so only the output's end (or a failed write) ends this.
            await out_task
            return
        done, _ = await asyncio.wait({out_task, in_task}, return_when=asyncio.FIRST_COMPLETED)
        if in_task in done and out_task not in done:
            # stdin ended; keep the output flowing until the container is done.
            with contextlib.suppress(ConnectionError, OSError):
                in_task.result()
            await out_task
    except (ConnectionError, OSError):
        pass
    finally:
        for task in (out_task, in_task):
            if task is not None and not task.done():
                task.cancel()
        m_writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await c_writer.drain()
