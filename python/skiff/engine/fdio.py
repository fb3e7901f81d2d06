"""Non-blocking file descriptors on the event loop: waiting for one to be ready and
writing a buffer out whole (archive streams, exec ptys)."""

from __future__ import annotations

import asyncio
import os


async def wait_fd(fd: int, *, write: bool) -> None:
    """Returns once ``fd`` is readable (or writable, with ``write``)."""
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[None] = loop.create_future()

    def wake() -> None:
        if not ready.done():
            ready.set_result(None)

    if write:
        loop.add_writer(fd, wake)
    else:
        loop.add_reader(fd, wake)
    try:
        await ready
    finally:
        if write:
            loop.remove_writer(fd)
        else:
            loop.remove_reader(fd)


async def write_all(fd: int, data: bytes) -> None:
    """Writes all of ``data`` to the non-blocking ``fd``, waiting while it is full
    (a BrokenPipeError when the reader has gone is the caller's)."""
    view = memoryview(data)
    while view:
        try:
            n = os.write(fd, view)
        except BlockingIOError:
            await wait_fd(fd, write=True)
            continue
        view = view[n:]


async def send(writer: asyncio.StreamWriter, data: bytes) -> None:
    """Writes ``data`` to a stream and waits until the transport takes it;
    ConnectionResetError when the peer is gone. (On a closed transport asyncio's
    own loop drops the bytes and its ``drain`` raises; uvloop raises RuntimeError
    from the write.)"""
    if writer.is_closing():
        raise ConnectionResetError("the connection is closed")
    writer.write(data)
    await writer.drain()
