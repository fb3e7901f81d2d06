"""Carrying a container's stdio over a hijacked connection (attach, exec, run).

- Output: without a tty the daemon frames it (``[stream, 0, 0, 0, length BE32]`` then
  the payload; 1 stdout, 2 stderr), and :func:`demux` splits it; with a tty it is raw.
- Input: a thread copies our stdin to the socket and half-closes the socket at EOF, so
  the container sees the end of its stdin while its output keeps coming.
- ``-it``: :class:`RawTerminal` puts the terminal in raw mode and restores it on exit
  (also after an error or a signal); SIGWINCH sends the new size; the detach keys
  (default ctrl-p ctrl-q) end the attachment and leave the container running.
"""

from __future__ import annotations

import contextlib
import os
import signal
import struct
import sys
import threading
from collections.abc import Callable, Iterator

from skiff.errors import InvalidArgument

TYPE_CHECKING = False  # typing itself costs the CLI's start ~10 ms
if TYPE_CHECKING:
    from typing import IO, Any

DEFAULT_DETACH_KEYS = "ctrl-p,ctrl-q"


class Detached(Exception):
    """The user typed the detach keys."""


def parse_detach_keys(text: str | None) -> bytes:
    """docker's ``--detach-keys``: ``ctrl-<c>`` or single characters, comma-separated."""
    keys = []
    for part in (text or DEFAULT_DETACH_KEYS).split(","):
        part = part.strip()
        if part.startswith("ctrl-") and len(part) == 6:
            c = part[5]
            if c == "@":
                keys.append(0)
            elif c.isalpha():
                keys.append(ord(c.lower()) - ord("a") + 1)
            elif c in "[\\]^_":
                keys.append(ord(c) - 64)
            else:
                raise InvalidArgument(f"invalid detach key {part!r}")
        elif len(part) == 1:
            keys.append(ord(part))
        else:
            raise InvalidArgument(f"invalid detach keys {text!r}: e.g. ctrl-p,ctrl-q")
    return bytes(keys)


def demux(read1: Callable[[int], bytes]) -> Iterator[tuple[int, bytes]]:
    """Splits a multiplexed stream into (stream number, payload) pairs."""
    buf = b""
    while True:
        while len(buf) < 8:
            data = read1(65536)
            if not data:
                return
            buf += data
        kind, length = buf[0], struct.unpack(">I", buf[4:8])[0]
        buf = buf[8:]
        while len(buf) < length:
            data = read1(max(65536, length - len(buf)))
            if not data:
                if buf:
                    yield kind, buf
                return
            buf += data
        yield kind, buf[:length]
        buf = buf[length:]


def copy_output(
    read1: Callable[[int], bytes],
    multiplexed: bool,
    stdout: IO[bytes] | None = None,
    stderr: IO[bytes] | None = None,
) -> None:
    """Writes the container's output to our stdout/stderr until the stream ends."""
    out = stdout or sys.stdout.buffer
    err = stderr or sys.stderr.buffer
    if not multiplexed:
        while data := read1(65536):
            out.write(data)
            out.flush()
        return
    for kind, payload in demux(read1):
        target = err if kind == 2 else out
        target.write(payload)
        target.flush()


class StdinPump:
    """Copies a file descriptor to the hijacked socket in a daemon thread.

    At EOF it half-closes the socket. With ``detach_keys`` (a tty session) it watches
    for the sequence and calls ``on_detach`` instead of sending it."""

    def __init__(
        self,
        hijacked: Any,
        fd: int = 0,
        detach_keys: bytes = b"",
        on_detach: Callable[[], None] | None = None,
    ) -> None:
        self.hijacked = hijacked
        self.fd = fd
        self.detach_keys = detach_keys
        self.on_detach = on_detach
        self.thread = threading.Thread(target=self._run, daemon=True, name="stdin")

    def start(self) -> None:
        self.thread.start()

    def _run(self) -> None:
        matched = b""
        try:
            while True:
                try:
                    data = os.read(self.fd, 65536)
                except InterruptedError:
                    continue
                except OSError:
                    data = b""
                if not data:
                    break
                if self.detach_keys:
                    data, matched, detached = self._scan(data, matched)
                    if detached:
                        if self.on_detach is not None:
                            self.on_detach()
                        return
                if data:
                    self.hijacked.send(data)
        except OSError:
            return
        self.hijacked.close_write()

    def _scan(self, data: bytes, matched: bytes) -> tuple[bytes, bytes, bool]:
        """Holds back a partial detach sequence; (bytes to send, held, detached)."""
        out = bytearray()
        keys = self.detach_keys
        for byte in data:
            b = bytes([byte])
            if keys.startswith(matched + b):
                matched += b
                if matched == keys:
                    return bytes(out), b"", True
                continue
            out += matched
            matched = b""
            if keys.startswith(b):
                matched = b
            else:
                out += b
        return bytes(out), matched, False


def terminal_size(fd: int = 1) -> tuple[int, int] | None:
    """(rows, columns) of the terminal on ``fd``, or None."""
    try:
        size = os.get_terminal_size(fd)
    except OSError:
        return None
    return size.lines, size.columns


class RawTerminal:
    """Raw mode on stdin's terminal for the length of a ``with``; restored after."""

    def __init__(self, fd: int = 0) -> None:
        self.fd = fd
        self.saved: list[Any] | None = None

    def __enter__(self) -> RawTerminal:
        import termios
        import tty

        if os.isatty(self.fd):
            self.saved = termios.tcgetattr(self.fd)
            tty.setraw(self.fd, termios.TCSANOW)
        return self

    def __exit__(self, *exc: object) -> None:
        self.restore()

    def restore(self) -> None:
        if self.saved is not None:
            import termios

            with contextlib.suppress(termios.error, OSError):
                termios.tcsetattr(self.fd, termios.TCSADRAIN, self.saved)
            self.saved = None


@contextlib.contextmanager
def forward_resizes(resize: Callable[[int, int], None], fd: int = 1) -> Iterator[None]:
    """Sends the terminal's size now and at every SIGWINCH (main thread only)."""

    def send(*_: object) -> None:
        size = terminal_size(fd)
        if size is not None:
            with contextlib.suppress(Exception):
                resize(*size)

    previous = signal.signal(signal.SIGWINCH, send)
    try:
        send()
        yield
    finally:
        signal.signal(signal.SIGWINCH, previous)
