"""Carrying a container's stdio over a hijacked connection (attach, exec, run).

- Output: without a tty the daemon frames it (``[stream, 0, 0, 0, length BE32]`` then
  the payload; 1 stdout, 2 stderr), and :func:`demux` splits it; with a tty it is raw.
- Input: a thread copies our stdin to the socket and half-closes the socket at EOF, so
  the container sees the end of its stdin while its output keeps coming.
- ``-it``: :class:`RawTerminal` puts the terminal in raw mode and restores it on exit
  (also after an error or a signal); SIGWINCH sends the new size; the detach keys
  (default ctrl-p ctrl-q) end the attachment and leave the container running.

Only ``os`` and ``sys`` are imported up front: ``run`` without a tty needs nothing
else, and ``signal``, ``threading``, ``contextlib`` and ``struct`` cost its start a few
ms (``signal`` imports ``enum``).
"""

from __future__ import annotations

import os
import sys

from skiff.errors import InvalidArgument

TYPE_CHECKING = False  # typing itself costs the CLI's start ~10 ms
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
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
        kind, length = buf[0], int.from_bytes(buf[4:8], "big")
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
        import threading  # only with stdin: run's start does without it

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
            import contextlib
            import termios

            with contextlib.suppress(termios.error, OSError):
                termios.tcsetattr(self.fd, termios.TCSADRAIN, self.saved)
            self.saved = None


class forward_resizes:  # lower-case: it replaced a function of that name
    """Sends the terminal's size now and at every SIGWINCH (main thread only), for the
    length of a ``with``."""

    def __init__(self, resize: Callable[[int, int], None], fd: int = 1) -> None:
        self.resize = resize
        self.fd = fd
        self.previous: Any = None

    def send(self, *_: object) -> None:
        size = terminal_size(self.fd)
        if size is not None:
            try:
                self.resize(*size)
            except Exception:
                return  # a resize the daemon refuses is no reason to stop

    def __enter__(self) -> forward_resizes:
        import signal

        self.previous = signal.signal(signal.SIGWINCH, self.send)
        try:
            self.send()
        except BaseException:
            signal.signal(signal.SIGWINCH, self.previous)
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        import signal

        signal.signal(signal.SIGWINCH, self.previous)


class SignalProxy:
    """Forwards SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1 and SIGUSR2 to ``send(name)``
    (``run``'s and ``attach``'s ``--sig-proxy``) for the length of a ``with``; the
    previous handlers are put back after. On ``_signal``, not ``signal``: that one
    imports ``enum``, which ``run`` does not otherwise need."""

    NAMES = ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2")

    def __init__(self, send: Callable[[str], None]) -> None:
        self.send = send
        self.previous: dict[int, Any] = {}
        self.names: dict[int, str] = {}

    def forward(self, signum: int, _frame: object) -> None:
        self.send(self.names[signum])

    def __enter__(self) -> SignalProxy:
        import _signal  # type: ignore[import-not-found]

        for name in self.NAMES:
            num = getattr(_signal, name)
            self.names[num] = name
            self.previous[num] = _signal.signal(num, self.forward)
        return self

    def __exit__(self, *exc: object) -> None:
        import _signal

        for num, handler in self.previous.items():
            _signal.signal(num, handler)
        self.previous.clear()
