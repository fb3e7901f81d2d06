"""JSON out, fast: what the daemon writes on every request and state change (answers,
container records, runtime specs) goes through orjson, ~10x quicker than the
standard library on a container's record. Compact, UTF-8; what orjson refuses
(integers past 64 bits, strings with lone surrogates, as a client's non-UTF-8
environment gives) is written by the standard library instead, ASCII-escaped as
it always was.

JSON in (request bodies) likewise: orjson reads what it reads exactly as the
standard library does; the rest (lone surrogates, NaN, other encodings than
UTF-8, and any long run of digits: orjson makes an integer past 64 bits a float)
is read by the standard library, whose errors are the ones reported."""

from __future__ import annotations

import json
import re
from typing import Any

import orjson

#: A number orjson might not read as the standard library does (19 digits and
#: more: an integer past 64 bits becomes a float there).
_LONG_NUMBER = re.compile(rb"[0-9]{19}")

_OPTIONS = orjson.OPT_NON_STR_KEYS


def dumps(obj: Any) -> bytes:
    """``obj`` as compact JSON, UTF-8."""
    try:
        return orjson.dumps(obj, option=_OPTIONS)
    except TypeError:  # (orjson.JSONEncodeError is one)
        return json.dumps(obj, separators=(",", ":")).encode()


def loads(raw: bytes) -> Any:
    """``raw`` read as :func:`json.loads` reads it (ValueError when it is not
    JSON, or nested too deep for it), through orjson when that gives the same."""
    if not _LONG_NUMBER.search(raw):
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            pass
    try:
        return json.loads(raw)
    except RecursionError:
        raise ValueError("nested too deep") from None
