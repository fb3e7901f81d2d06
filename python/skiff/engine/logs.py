"""Reading a container's json-file log (written by its monitor) for ``GET
/containers/{id}/logs``: tail, since/until, timestamps, stream selection, follow.

The log is ``<id>-json.log`` plus rotated ``.1`` (newest) ... ``.N`` (oldest), one
JSON object per line: ``{"log": TEXT, "stream": "stdout"|"stderr", "time": RFC3339}``.
Without a tty each entry goes out as a multiplexed frame; with one, raw.
"""

from __future__ import annotations

import asyncio
import json
import os
import struct
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

from skiff.timefmt import parse_rfc3339

STDIN, STDOUT, STDERR = 0, 1, 2
FOLLOW_POLL = 0.05


def frame(stream: int, data: bytes) -> bytes:
    """Docker's multiplexed-stream frame: [stream, 0, 0, 0, size (big-endian u32)]."""
    return struct.pack(">BxxxI", stream, len(data)) + data


@dataclass(frozen=True)
class LogOptions:
    stdout: bool = True
    stderr: bool = True
    since: float = 0.0  # unix seconds; 0: from the start
    until: float = 0.0  # 0: no end
    tail: int = -1  # -1: all
    timestamps: bool = False
    follow: bool = False


def parse_time_arg(text: str | None) -> float:
    """since/until as docker sends them: unix seconds with optional fraction, or an
    RFC 3339 time."""
    if not text:
        return 0.0
    try:
        return float(text)
    except ValueError:
        return parse_rfc3339(text)


def log_files(path: Path) -> list[Path]:
    """The log's files, oldest first."""
    rotated = []
    n = 1
    while (p := path.with_name(f"{path.name}.{n}")).exists():
        rotated.append(p)
        n += 1
    return [*reversed(rotated), path]


def _decode(line: bytes) -> tuple[str, str, str] | None:
    try:
        entry = json.loads(line)
        return str(entry["log"]), str(entry["stream"]), str(entry["time"])
    except (ValueError, KeyError, TypeError):
        return None


def _render(entry: tuple[str, str, str], opts: LogOptions, tty: bool) -> bytes | None:
    text, stream, stamp = entry
    if (stream == "stdout" and not opts.stdout) or (stream == "stderr" and not opts.stderr):
        return None
    if opts.since or opts.until:
        t = parse_rfc3339(stamp)
        if opts.since and t < opts.since:
            return None
        if opts.until and t > opts.until:
            return None
    data = text.encode("utf-8", "surrogateescape")
    if opts.timestamps:
        data = stamp.encode() + b" " + data
    if tty:
        return data
    return frame(STDERR if stream == "stderr" else STDOUT, data)


async def read_logs(
    path: Path, opts: LogOptions, tty: bool, running: Callable[[], bool]
) -> AsyncIterator[bytes]:
    """The log's entries as the API sends them; with ``follow`` it keeps going while
    ``running()`` is true, and ends once the container stopped and all is read."""
    if opts.tail == 0 and not opts.follow:
        return
    files = log_files(path)
    # The entries up to now (only the last ``tail`` when asked).
    backlog: deque[bytes] | list[bytes] = deque(maxlen=opts.tail) if opts.tail > 0 else []
    handle = None
    for f in files:
        try:
            fh = open(f, "rb")  # noqa: SIM115 - kept open for follow when it is the last
        except FileNotFoundError:
            continue
        with_last = f == path
        for line in fh:
            if not line.endswith(b"\n"):
                # A line being written: re-read it when following.
                fh.seek(-len(line), os.SEEK_CUR)
                break
            entry = _decode(line)
            if entry is None:
                continue
            out = _render(entry, opts, tty)
            if out is not None and opts.tail != 0:
                backlog.append(out)
        if with_last and opts.follow:
            handle = fh
        else:
            fh.close()
    for out in backlog:
        yield out
    if not opts.follow:
        return
    try:
        pending = b""
        final = False  # the container stopped: one more read, then done
        while True:
            if handle is None:
                try:
                    handle = open(path, "rb")  # noqa: SIM115
                except FileNotFoundError:
                    if not running():
                        return
                    await asyncio.sleep(FOLLOW_POLL)
                    continue
            chunk = handle.read(256 * 1024)
            if chunk:
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    entry = _decode(line)
                    if entry is None:
                        continue
                    if opts.until and parse_rfc3339(entry[2]) > opts.until:
                        return
                    out = _render(entry, opts, tty)
                    if out is not None:
                        yield out
                continue
            # Nothing new: rotated away, stopped, or just quiet.
            try:
                same = os.stat(path).st_ino == os.fstat(handle.fileno()).st_ino
            except FileNotFoundError:
                same = False
            if not same:
                handle.close()
                handle = None
                pending = b""
                continue
            if final or (opts.until and opts.until < time.time()):
                return
            if not running():
                final = True
                continue
            await asyncio.sleep(FOLLOW_POLL)
    finally:
        if handle is not None:
            handle.close()
