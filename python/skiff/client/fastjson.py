"""JSON for the CLI's hot path without importing :mod:`json`.

``import json`` compiles half a dozen regular expressions and imports ``re`` and
``enum``: 8-12 ms of every CLI start on a small machine, more than the requests of a
``skiff ps``. The work itself is done by the same C accelerator :mod:`json` uses
(``_json``), driven here directly; where that module is missing (another Python),
this falls back to :mod:`json` itself.

:func:`dumps` writes compact JSON (ASCII, no spaces); :func:`loads` takes ``str`` or
UTF-8 ``bytes`` and, on anything else than one JSON value, hands the text to
:mod:`json` for its error (``json.JSONDecodeError``, a ValueError, worded as ever).
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_make_scanner: Any = None
try:
    from _json import encode_basestring as _quote
    from _json import encode_basestring_ascii as _encode_str
    from _json import make_encoder as _make_encoder
    from _json import make_scanner as _make_scanner
except ImportError:  # pragma: no cover - CPython always has it
    pass

_WHITESPACE = " \t\n\r"


def _default(obj: Any) -> Any:
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


class _Context:
    """What ``_json.make_scanner`` reads from a decoder: json.loads' defaults."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = {
        "NaN": float("nan"),
        "Infinity": float("inf"),
        "-Infinity": float("-inf"),
    }.__getitem__
    memo: dict[str, Any] = {}


if _make_scanner is not None:
    _scan = _make_scanner(_Context())

    def dumps(obj: Any) -> str:
        """``obj`` as compact JSON (``json.dumps(obj, separators=(",", ":"))``)."""
        encode = _make_encoder({}, _default, _encode_str, None, ":", ",", False, False, True)
        return "".join(encode(obj, 0))

    def quote(text: str) -> str:
        """``text`` as a JSON string, other than ASCII kept (``json.dumps(text,
        ensure_ascii=False)``)."""
        result: str = _quote(text)
        return result

    def loads(text: str | bytes | bytearray) -> Any:
        """The one JSON value in ``text``."""
        if not isinstance(text, str):
            try:
                text = bytes(text).decode("utf-8").removeprefix("\ufeff")
            except UnicodeDecodeError:  # UTF-16 or -32 (json tells them apart), or not text
                return _loads_slowly(text)
        start = len(text) - len(text.lstrip(_WHITESPACE))
        try:
            value, end = _scan(text, start)
        except (StopIteration, ValueError, SystemError):
            # Not JSON. The C scanner can only word that with json.decoder imported (it
            # raises SystemError otherwise): json itself says what is wrong, and where.
            return _loads_slowly(text)
        if text[end:].strip(_WHITESPACE):
            return _loads_slowly(text)
        return value

    def _loads_slowly(text: str | bytes | bytearray) -> Any:
        import json

        return json.loads(text)

else:  # pragma: no cover
    import json

    def dumps(obj: Any) -> str:
        return json.dumps(obj, separators=(",", ":"))

    def quote(text: str) -> str:
        return json.dumps(text, ensure_ascii=False)

    def loads(text: str | bytes | bytearray) -> Any:
        return json.loads(text)
