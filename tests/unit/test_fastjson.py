"""skiff.client.fastjson: json's results and json's errors, without importing json."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from skiff.client import fastjson

VALUES: list[object] = [
    {"Id": "abc", "Warnings": [], "n": 3, "f": 2.5, "t": True, "F": False, "z": None},
    {"nested": {"list": [1, [2, {"x": "y"}]], "empty": {}}},
    ["é", "\u2028", 'q"uote\\', "\t\n\x01", "日本"],
    "text",
    0,
    -17,
    1e300,
    -0.0,
    [],
]


@pytest.mark.parametrize("value", VALUES)
def test_same_text_and_values_as_json(value: object) -> None:
    assert fastjson.dumps(value) == json.dumps(value, separators=(",", ":"))
    assert fastjson.loads(fastjson.dumps(value)) == value
    assert fastjson.loads(json.dumps(value, indent=2)) == value
    assert fastjson.loads(json.dumps(value).encode()) == value


def test_quote_keeps_non_ascii() -> None:
    for text in ["", "plain", 'sh -c "echo é"', "\u2028\x00\\"]:
        assert fastjson.quote(text) == json.dumps(text, ensure_ascii=False)


def test_bytes_in_any_encoding_json_reads() -> None:
    doc = {"currentContext": "mine"}
    assert fastjson.loads(b"\xef\xbb\xbf" + json.dumps(doc).encode()) == doc
    assert fastjson.loads(json.dumps(doc).encode("utf-16")) == doc
    assert fastjson.loads(bytearray(b' {"a": 1}\n')) == {"a": 1}


def test_not_serializable() -> None:
    with pytest.raises(TypeError, match="not JSON serializable"):
        fastjson.dumps({"x": object()})


BAD = ["", "  ", "{", "{bad", "[1,]", "1 2", '{"a": 1} x', "nul", '"open']


def test_errors_are_jsons_even_before_json_is_imported() -> None:
    """The C scanner can only word an error once json.decoder is imported; a fresh
    process (the CLI's case) must still get json's JSONDecodeError, with json's words."""
    script = (
        "import sys\n"
        "from skiff.client import fastjson\n"
        "assert 'json' not in sys.modules\n"
        "for text in sys.argv[1:]:\n"
        "    try:\n"
        "        fastjson.loads(text)\n"
        "    except ValueError as err:\n"
        "        print(type(err).__name__, err)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, *BAD], capture_output=True, text=True, check=True
    ).stdout
    expected = []
    for text in BAD:
        with pytest.raises(json.JSONDecodeError) as caught:
            json.loads(text)
        expected.append(f"JSONDecodeError {caught.value}")
    assert out.splitlines() == expected
