"""Docker's ``--format`` and its tables, for every listing command.

A listing has rows (objects whose attributes are the template's fields, each with a
``HEADERS`` table naming its columns) and a default table template. ``--format`` is:

- empty or ``table``: the default table;
- ``table TEMPLATE``: a table of that template, headed by the columns' names;
- ``json``: one JSON object per row (``{{json .}}``);
- anything else: TEMPLATE rendered once per row.

Tables are laid out as Go's ``tabwriter`` with docker's settings (minimum width 10,
padding 3): every cell but the last of a line is padded to its column's width.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing itself costs the CLI's start ~10 ms
if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence
    from typing import Any

    from skiff.cli.template import Template


class Row:
    """A row of a listing: fields are properties; ``to_dict`` is ``{{json .}}``."""

    HEADERS: dict[str, str] = {}

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in sorted(self.HEADERS)}


class _Header:
    def __init__(self, headers: dict[str, str]) -> None:
        self._headers = headers

    def __getattr__(self, name: str) -> str:
        if name.startswith("_"):
            raise AttributeError(name)
        return self._headers.get(name, name.upper())

    def to_dict(self) -> dict[str, str]:
        return dict(self._headers)


def tabwrite(lines: Iterable[str], minwidth: int = 10, padding: int = 3) -> str:
    """Aligns tab-separated cells like Go's tabwriter (docker's table settings)."""
    rows = [line.split("\t") for line in lines]
    widths: list[int] = []
    for cells in rows:
        for j, cell in enumerate(cells[:-1]):
            w = max(minwidth, len(cell) + padding)
            if j == len(widths):
                widths.append(w)
            elif w > widths[j]:
                widths[j] = w
    out = []
    for cells in rows:
        parts = [cell.ljust(widths[j]) for j, cell in enumerate(cells[:-1])]
        parts.append(cells[-1])
        out.append("".join(parts))
    return "".join(line + "\n" for line in out)


class _Simple:
    """A template of text and ``{{.Field}}`` only, rendered without the template
    engine (which costs the start of every listing a few milliseconds)."""

    def __init__(self, parts: list[tuple[bool, str]]) -> None:
        self.parts = parts

    def render(self, row: Any) -> str:
        return "".join(str(getattr(row, v)) if is_field else v for is_field, v in self.parts)


def _template(text: str) -> _Simple | Template:
    parts: list[tuple[bool, str]] = []
    rest = text
    while rest:
        start = rest.find("{{")
        if start < 0:
            parts.append((False, rest))
            break
        end = rest.find("}}", start)
        inner = rest[start + 2 : end].strip() if end > 0 else ""
        if not (inner.startswith(".") and inner[1:].isidentifier()):
            from skiff.cli.template import Template

            return Template(text)
        if start:
            parts.append((False, rest[:start]))
        parts.append((True, inner[1:]))
        rest = rest[end + 2 :]
    return _Simple(parts)


def to_json(value: Any) -> str:
    from skiff.cli.template import to_json as encode

    return encode(value)


def render(
    rows: Sequence[Any],
    fmt: str | None,
    default_table: str,
    headers: dict[str, str],
    *,
    quiet_field: str | None = None,
    quiet: bool = False,
) -> str:
    """The text a listing prints for ``--format fmt`` (or ``-q``)."""
    if quiet and quiet_field and not fmt:
        return "".join(f"{getattr(r, quiet_field)}\n" for r in rows)
    fmt = (fmt or "").strip("\n") if fmt is not None else ""
    if fmt == "json":
        return "".join(to_json(r) + "\n" for r in rows)
    if not fmt or fmt == "table":
        fmt = default_table
    if fmt.startswith("table"):
        body = _template(_unescape(fmt[5:].lstrip(" ")))
        lines = [body.render(_Header(headers))]
        lines += [body.render(r) for r in rows]
        return tabwrite(line for text in lines for line in text.split("\n"))
    tmpl = _template(_unescape(fmt))
    return "".join(tmpl.render(r) + "\n" for r in rows)


def _unescape(text: str) -> str:
    """docker's ``\\t`` and ``\\n`` typed literally on the command line."""
    return text.replace("\\t", "\t").replace("\\n", "\n")


def render_one(value: Any, fmt: str) -> str:
    """``inspect -f``: the template rendered on one object (``json``: the object)."""
    from skiff.cli.template import Template, to_json

    if fmt == "json":
        return to_json(value)
    return Template(_unescape(fmt)).render(value)
