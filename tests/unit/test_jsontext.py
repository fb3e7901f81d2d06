"""skiff.jsontext: compact UTF-8 JSON, through orjson or, for what it refuses, the
standard library."""

from __future__ import annotations

import json

from skiff import jsontext


def test_compact_utf8_json_that_reads_back_the_same() -> None:
    obj = {"Name": "café", "Args": ["a", "b"], "Pid": 0, "Ok": True, "Error": None, "F": 0.5}
    out = jsontext.dumps(obj)
    assert out == '{"Name":"café","Args":["a","b"],"Pid":0,"Ok":true,"Error":null,"F":0.5}'.encode()
    assert json.loads(out) == obj


def test_what_orjson_refuses_is_written_by_the_standard_library() -> None:
    big = {"Size": 2**70, "Keys": {1: "one"}}
    assert json.loads(jsontext.dumps(big)) == {"Size": 2**70, "Keys": {"1": "one"}}
    # A lone surrogate (what json.loads makes of a client's non-UTF-8 text).
    env = {"Env": ["X=\udcff", "Y=é"]}
    assert jsontext.dumps(env) == b'{"Env":["X=\\udcff","Y=\\u00e9"]}'
    assert json.loads(jsontext.dumps(env)) == env


def test_bodies_are_read_as_the_standard_library_reads_them() -> None:
    cases = [
        b'{"Image": "busybox", "Cmd": ["sleep", "30"], "Memory": 0, "F": 0.25}',
        b'{"Memory": 123456789012345678901234567890}',  # an int, not a float
        b'{"Memory": 18446744073709551616, "Neg": -9223372036854775809}',
        b'{"Env": ["X=\\udcff"]}',  # a lone surrogate
        b"[NaN, Infinity]",
        '{"Name": "caf\u00e9"}'.encode("utf-16"),
        b'{"a": 1, "a": 2}',
        b"1e400",
    ]
    for raw in cases:
        got, want = jsontext.loads(raw), json.loads(raw)
        assert repr(got) == repr(want), raw
    assert isinstance(jsontext.loads(b'{"M": 123456789012345678901234567890}')["M"], int)
    for bad in (b"{", b'{"a": }', b"\xff"):
        try:
            jsontext.loads(bad)
        except ValueError:
            continue
        raise AssertionError(f"{bad!r} was read")


def test_a_body_nested_too_deep_is_a_value_error() -> None:
    for depth in (2000, 100_000):
        raw = b"[" * depth + b"]" * depth
        try:
            jsontext.loads(raw)
        except ValueError:
            continue
        raise AssertionError(f"depth {depth} was read")
