"""RFC 3339 times as the Engine API writes them (skiff.timefmt)."""

from __future__ import annotations

import pytest

from skiff.timefmt import ZERO_TIME, parse_rfc3339, rfc3339_nano


def test_nanoseconds_round_trip() -> None:
    ns = 1_764_327_429_085_123_456
    text = rfc3339_nano(ns)
    assert text == "2025-11-28T10:57:09.085123456Z"
    assert parse_rfc3339(text) == pytest.approx(ns / 1e9, abs=1e-6)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("1970-01-01T00:00:10Z", 10.0),
        ("1970-01-01T00:00:10.5Z", 10.5),
        ("1970-01-01T01:00:10.25+01:00", 10.25),
        ("1970-01-01T00:00:10", 10.0),  # no zone: UTC
        ("", 0.0),
        (ZERO_TIME, 0.0),
    ],
)
def test_parse_forms(text: str, seconds: float) -> None:
    assert parse_rfc3339(text) == pytest.approx(seconds)


def test_garbage_raises_or_gives_the_default() -> None:
    with pytest.raises(ValueError):
        parse_rfc3339("yesterday")
    assert parse_rfc3339("yesterday", 0.0) == 0.0
