"""Times as the Engine API and image configs write them: RFC 3339, UTC, nanoseconds
(``2026-11-28T11:07:09.085123456Z``); Go's zero time stands for "never"."""

from __future__ import annotations

import time

ZERO_TIME = "0001-01-01T00:00:00Z"


#: The last second formatted, and its text (strftime costs ~10 µs; a busy daemon
#: stamps many events within one second).
_last_second: tuple[int, str] = (-1, "")


def rfc3339_nano(ns: int | None = None) -> str:
    """``ns`` (unix nanoseconds; now when None) with all nine fraction digits."""
    global _last_second
    ns = time.time_ns() if ns is None else ns
    secs, frac = divmod(ns, 1_000_000_000)
    last = _last_second  # one read: another thread may replace it meanwhile
    if last[0] != secs:
        last = (secs, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)))
        _last_second = last
    return f"{last[1]}.{frac:09d}Z"


def parse_rfc3339(text: str, default: float | None = None) -> float:
    """Unix seconds of an RFC 3339 time (any fraction, ``Z`` or an offset; no zone
    means UTC). Empty text and Go's zero time are 0. Text that is no such time
    raises ValueError, or gives ``default`` when one is given."""
    if not text or text.startswith("0001-01-01"):
        return 0.0
    import datetime

    head, dot, rest = text.strip().partition(".")
    frac = 0.0
    if dot:
        digits = rest[: len(rest) - len(rest.lstrip("0123456789"))]
        frac = float("0." + digits) if digits else 0.0
        head += rest[len(digits) :]
    try:
        moment = datetime.datetime.fromisoformat(head)
    except ValueError:
        if default is None:
            raise
        return default
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return moment.timestamp() + frac
