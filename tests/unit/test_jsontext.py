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
