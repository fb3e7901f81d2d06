"""Sizes, durations and times as docker's CLI shows and takes them.

Wording comes from :mod:`skiff.engine.humanize` (go-units' HumanDuration and
HumanSize); this module adds the CLI's own uses: three significant digits in tables
("2.14MB", go-units' HumanSizeWithPrecision(n, 3)), "… ago", and parsing of sizes
("512m") and times ("10m", RFC 3339, Unix seconds) given on the command line.
"""

from __future__ import annotations

import time

from skiff.engine import humanize
from skiff.errors import InvalidArgument


def size(n: float) -> str:
    """A size in tables: ``2.14MB`` (three significant digits, decimal units)."""
    text = humanize.size(n)
    digits = text.rstrip("BkMGTP")
    return f"{float(digits):.3g}{text[len(digits) :]}"


def size4(n: float) -> str:
    """go-units' HumanSize (four significant digits: ``3.707MB``), as ``system df`` shows."""
    return humanize.size(n)


def ago(unix_seconds: float, now: float | None = None) -> str:
    """``2 minutes ago`` for a Unix time."""
    now = time.time() if now is None else now
    return humanize.duration(max(0.0, now - unix_seconds)) + " ago"


def duration(seconds: float) -> str:
    return humanize.duration(seconds)


_BINARY = {"b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}


def ram_in_bytes(text: str) -> int:
    """go-units' RAMInBytes: ``512m``, ``1g``, ``1.5GiB``, ``100000`` (binary units)."""
    value = text.strip().lower()
    for suffix in ("ib", "b"):
        if (
            value.endswith(suffix)
            and len(value) > len(suffix)
            and value[-len(suffix) - 1] in _BINARY
        ):
            value = value[: -len(suffix)]
            break
    mult = 1
    if value and value[-1] in _BINARY:
        mult = _BINARY[value[-1]]
        value = value[:-1]
    try:
        number = float(value)
    except ValueError:
        raise InvalidArgument(f"invalid size: {text!r}") from None
    if number < 0:
        raise InvalidArgument(f"invalid size: {text!r}")
    return int(number * mult)


def parse_duration(text: str) -> float:
    """Go's ParseDuration for the forms people type: ``30s``, ``1m30s``, ``1.5h``, ``500ms``."""
    units = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
    rest = text.strip()
    if rest in ("0", ""):
        return 0.0
    total = 0.0
    while rest:
        i = 0
        while i < len(rest) and (rest[i].isdigit() or rest[i] == "."):
            i += 1
        j = i
        while j < len(rest) and not (rest[j].isdigit() or rest[j] == "."):
            j += 1
        number, unit = rest[:i], rest[i:j]
        if not number or unit not in units:
            raise InvalidArgument(f"time: invalid duration {text!r}")
        total += float(number) * units[unit]
        rest = rest[j:]
    return total


def timestamp_arg(text: str, now: float | None = None) -> str:
    """docker's GetTimestamp: what ``--since``/``--until`` send (Unix seconds as text).

    Takes a duration before now (``10m``), Unix seconds (``1700000000[.5]``), or an RFC
    3339 date/time (``2024-01-02``, ``2024-01-02T15:04:05Z``, with an offset)."""
    value = text.strip()
    now = time.time() if now is None else now
    if not value:
        return ""
    if value.replace(".", "", 1).isdigit():
        return value
    try:
        return f"{now - parse_duration(value):.9f}"
    except InvalidArgument:
        pass
    from datetime import UTC, datetime

    iso = value.replace("Z", "+00:00")
    try:
        moment = datetime.fromisoformat(iso)
    except ValueError:
        raise InvalidArgument(
            f"invalid value for time {text!r}: use a duration (10m), Unix seconds or RFC 3339"
        ) from None
    if moment.tzinfo is None:
        moment = moment.astimezone() if "T" in value else moment.replace(tzinfo=UTC)
    return f"{moment.timestamp():.9f}"
