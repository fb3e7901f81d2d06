"""The subset of Go's text/template that ``--format`` takes, with docker's functions.

Actions: ``{{.Field.Sub}}``, ``{{.}}``, pipelines (``{{.Names | upper}}``), function
calls (``{{json .}}``, ``{{index .Config.Labels "k"}}``, ``{{join .Args ","}}``,
``{{printf "%s:%d" .A .B}}``, ``{{len .X}}``, ``{{eq .A "b"}}``), ``{{if}}``/``{{else}}``,
``{{range}}``, ``{{with}}`` ... ``{{end}}``, and ``{{-``/``-}}`` trimming. Fields are
dict keys or attributes. Values print as Go prints them (``map[k:v]``, ``[a b]``,
``<no value>`` for a missing key). Errors raise :class:`TemplateError`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from skiff.errors import InvalidArgument


class TemplateError(InvalidArgument):
    """The template does not parse, or fails on the data."""


class _Missing:
    def __str__(self) -> str:
        return "<no value>"


MISSING = _Missing()


class Nil:
    """A nil slice or map of docker's typed structs (a null or absent JSON field):
    prints ``[]`` / ``map[]`` as Go does, encodes as ``null``, ranges over nothing."""

    def __init__(self, kind: str) -> None:
        self.kind = kind

    def __str__(self) -> str:
        return "[]" if self.kind == "slice" else "map[]"

    def __bool__(self) -> bool:
        return False

    def __len__(self) -> int:
        return 0

    def __iter__(self) -> Any:
        return iter(())

    def to_dict(self) -> None:
        return None


#: Fields that are slices or maps in docker's Go types (containers and images), so
#: that a null or missing one prints as Go prints them.
SLICES = frozenset(
    {
        "Cmd", "Entrypoint", "Env", "RepoTags", "RepoDigests", "Layers", "Binds", "CapAdd",
        "CapDrop", "Dns", "DnsOptions", "DnsSearch", "ExtraHosts", "GroupAdd", "SecurityOpt",
        "Mounts", "Ulimits", "Devices", "Args", "OnBuild", "Shell", "Links", "VolumesFrom",
        "DeviceRequests", "Aliases", "DNSNames",
    }
)  # fmt: skip
MAPS = frozenset(
    {"Labels", "ExposedPorts", "Volumes", "Ports", "Networks", "Sysctls", "StorageOpt", "Options"}
)

_TOKEN = re.compile(r"{{(-\s)?(.*?)(\s-)?}}", re.S)
_ARG = re.compile(
    r"""\s*(?:
        (?P<str>"(?:[^"\\]|\\.)*"|`[^`]*`)
      | (?P<num>-?\d+(?:\.\d+)?)
      | (?P<field>(?:\$\w*)?(?:\.[\w]+)+|\.|\$\w*)
      | (?P<pipe>\|)
      | (?P<open>\()
      | (?P<close>\))
      | (?P<ident>[A-Za-z_]\w*)
    )""",
    re.X,
)


class Template:
    def __init__(self, text: str, funcs: dict[str, Callable[..., Any]] | None = None) -> None:
        self.text = text
        self.funcs = {**FUNCS, **(funcs or {})}
        self._toks = self._tokens(text)
        self.tree, _, end = self._parse(0)
        if end is not None:
            raise TemplateError(f"template: unexpected {{{{{end}}}}}")

    @staticmethod
    def _tokens(text: str) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        pos = 0
        trim_next = False
        for m in _TOKEN.finditer(text):
            chunk = text[pos : m.start()]
            if trim_next:
                chunk = chunk.lstrip()
            if m.group(1):
                chunk = chunk.rstrip()
            if chunk:
                out.append(("text", chunk))
            action = m.group(2).strip()
            if not action.startswith("/*"):
                out.append(("action", action))
            trim_next = bool(m.group(3))
            pos = m.end()
        chunk = text[pos:]
        if "{{" in chunk:
            raise TemplateError(f"template: unclosed action in {text!r}")
        if trim_next:
            chunk = chunk.lstrip()
        if chunk:
            out.append(("text", chunk))
        return out

    def _parse(self, i: int, one: bool = False) -> tuple[list[Any], int, str | None]:
        """Nodes until {{end}} / {{else}} (or just one node); returns (nodes, next
        index, the ender)."""
        tokens = self._toks
        nodes: list[Any] = []
        while i < len(tokens) and not (one and nodes):
            kind, value = tokens[i]
            i += 1
            if kind == "text":
                nodes.append(("text", value))
                continue
            word = value.split(None, 1)[0] if value else ""
            if word in ("end", "else"):
                if word == "else" and value != "else":  # {{else if ...}}
                    return nodes, i - 1, "elseif"
                return nodes, i, word
            if word in ("if", "range", "with"):
                pipe = self._pipeline(value[len(word) :])
                body, i, ender = self._parse(i)
                alt: list[Any] = []
                if ender == "elseif":
                    # {{else if X}} is {{else}}{{if X}}...{{end}}, sharing one {{end}}
                    tokens[i] = ("action", tokens[i][1][4:].strip())
                    alt, i, _ = self._parse(i, one=True)
                    nodes.append((word, pipe, body, alt))
                    continue
                if ender == "else":
                    alt, i, ender = self._parse(i)
                if ender != "end":
                    raise TemplateError(f"template: unexpected EOF in {{{{{word}}}}}")
                nodes.append((word, pipe, body, alt))
                continue
            if not value:
                raise TemplateError("template: missing value for command")
            nodes.append(("action", self._pipeline(value)))
        return nodes, i, None

    def _pipeline(self, text: str) -> list[list[Any]]:
        pipe, rest = self._commands(text.strip(), 0)
        if rest != len(text.strip()):
            raise TemplateError(f"template: unexpected {text.strip()[rest:]!r}")
        if not pipe or not pipe[0]:
            raise TemplateError("template: missing value for command")
        return pipe

    def _commands(self, text: str, pos: int) -> tuple[list[list[Any]], int]:
        pipe: list[list[Any]] = [[]]
        while pos < len(text):
            m = _ARG.match(text, pos)
            if m is None or m.end() == pos:
                if text[pos:].strip() == "":
                    return pipe, len(text)
                raise TemplateError(f"template: bad syntax near {text[pos:]!r}")
            pos = m.end()
            if m.group("str") is not None:
                s = m.group("str")
                pipe[-1].append(("lit", s[1:-1] if s[0] == "`" else json.loads(s)))
            elif m.group("num") is not None:
                n = m.group("num")
                pipe[-1].append(("lit", float(n) if "." in n else int(n)))
            elif m.group("field") is not None:
                f = m.group("field")
                base, _, path = f.partition(".") if f.startswith("$") else ("", "", f[1:])
                del base
                pipe[-1].append(("field", [p for p in path.split(".") if p]))
            elif m.group("pipe"):
                pipe.append([])
            elif m.group("open"):
                sub, pos = self._commands(text, pos)
                pipe[-1].append(("sub", sub))
            elif m.group("close"):
                return pipe, pos
            else:
                name = m.group("ident")
                if name in ("true", "false"):
                    pipe[-1].append(("lit", name == "true"))
                elif name == "nil":
                    pipe[-1].append(("lit", None))
                elif name in self.funcs:
                    pipe[-1].append(("func", name))
                else:
                    raise TemplateError(f'template: function "{name}" not defined')
        return pipe, pos

    # -- execution ---------------------------------------------------------------

    def render(self, data: Any) -> str:
        out: list[str] = []
        self._exec(self.tree, data, out)
        return "".join(out)

    def _exec(self, nodes: list[Any], dot: Any, out: list[str]) -> None:
        for node in nodes:
            kind = node[0]
            if kind == "text":
                out.append(node[1])
            elif kind == "action":
                out.append(go_str(self._eval_pipe(node[1], dot)))
            else:
                _, pipe, body, alt = node
                value = self._eval_pipe(pipe, dot)
                if kind == "if":
                    self._exec(body if truth(value) else alt, dot, out)
                elif kind == "with":
                    self._exec(body if truth(value) else alt, value if truth(value) else dot, out)
                else:  # range
                    items: list[Any]
                    if isinstance(value, dict):
                        items = [value[k] for k in sorted(value)]
                    elif value is None or value is MISSING or isinstance(value, Nil):
                        items = []
                    else:
                        items = list(value)
                    if not items:
                        self._exec(alt, dot, out)
                    for item in items:
                        self._exec(body, item, out)

    def _eval_pipe(self, pipe: list[list[Any]], dot: Any) -> Any:
        value: Any = MISSING
        for n, cmd in enumerate(pipe):
            extra = [value] if n else []
            value = self._eval_cmd(cmd, dot, extra)
        return value

    def _eval_arg(self, arg: Any, dot: Any) -> Any:
        kind, v = arg
        if kind == "lit":
            return v
        if kind == "field":
            return field(dot, v)
        if kind == "sub":
            return self._eval_pipe(v, dot)
        return self.funcs[v]()

    def _eval_cmd(self, cmd: list[Any], dot: Any, extra: list[Any]) -> Any:
        head = cmd[0]
        if head[0] == "func":
            args = [self._eval_arg(a, dot) for a in cmd[1:]] + extra
            try:
                return self.funcs[head[1]](*args)
            except TemplateError:
                raise
            except (TypeError, ValueError, KeyError, IndexError) as err:
                raise TemplateError(f"template: error calling {head[1]}: {err}") from None
        if len(cmd) > 1 or extra:
            # a method with arguments: {{.Label "k"}}
            if head[0] == "field" and head[1]:
                owner = field(dot, head[1][:-1])
                method = getattr(owner, head[1][-1], None)
                if callable(method) and not isinstance(owner, dict):
                    args = [self._eval_arg(a, dot) for a in cmd[1:]] + extra
                    return method(*args)
            raise TemplateError("template: can't give argument to non-function")
        return self._eval_arg(head, dot)


def field(value: Any, path: list[str]) -> Any:
    for name in path:
        if value is None or value is MISSING:
            raise TemplateError(f"template: nil pointer evaluating .{name}")
        if isinstance(value, Nil):
            return MISSING
        if isinstance(value, dict):
            value = value.get(name, MISSING)
            if value is None or value is MISSING:
                if name in SLICES:
                    value = Nil("slice")
                elif name in MAPS:
                    value = Nil("map")
        else:
            attr = getattr(value, name, MISSING)
            if attr is MISSING:
                raise TemplateError(f"template: can't evaluate field {name}")
            value = attr() if callable(attr) else attr
    return value


def truth(value: Any) -> bool:
    return value is not MISSING and bool(value)


def go_str(value: Any) -> str:
    """A value as Go's fmt prints it with %v."""
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e21:
            return str(int(value)) if abs(value) < 1e6 else f"{value:g}".replace("e+0", "e+0")
        return repr(value)
    if isinstance(value, Nil):
        return str(value)
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{go_str(value[k])}" for k in sorted(value)) + "]"
    if isinstance(value, list | tuple):
        return "[" + " ".join(go_str(v) for v in value) + "]"
    return str(value)


def to_json(value: Any) -> str:
    if isinstance(value, Nil):
        return "null"
    if hasattr(value, "to_dict"):
        value = value.to_dict()
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=_json_default)


def _json_default(value: Any) -> Any:
    if isinstance(value, Nil):
        return None
    if hasattr(value, "to_dict"):
        return value.to_dict()
    if value is MISSING:
        return None
    raise TypeError(f"cannot encode {type(value).__name__}")


def _index(container: Any, *keys: Any) -> Any:
    for key in keys:
        if container is None or container is MISSING:
            return MISSING
        if isinstance(container, dict):
            container = container.get(key, MISSING)
        else:
            container = container[int(key)]
    return container


def _printf(fmt: str, *args: Any) -> str:
    """Go's Printf for the verbs people use: %s %v %d %q %%."""
    out: list[str] = []
    it = iter(args)
    i = 0
    while i < len(fmt):
        c = fmt[i]
        if c == "%" and i + 1 < len(fmt):
            verb = fmt[i + 1]
            i += 2
            if verb == "%":
                out.append("%")
            elif verb == "q":
                out.append(json.dumps(go_str(next(it, ""))))
            else:
                out.append(go_str(next(it, "")))
            continue
        out.append(c)
        i += 1
    return "".join(out)


def _pad(value: Any, left: int, right: int) -> str:
    return " " * left + go_str(value) + " " * right


def _truncate(value: Any, n: int) -> str:
    return go_str(value)[:n]


def _eq(a: Any, *bs: Any) -> bool:
    return any(a == b for b in bs)


def _len(value: Any) -> int:
    return 0 if value is None or value is MISSING else len(value)


FUNCS: dict[str, Callable[..., Any]] = {
    "json": to_json,
    "join": lambda items, sep: sep.join(go_str(i) for i in (items or [])),
    "split": lambda s, sep: go_str(s).split(sep),
    "title": lambda s: go_str(s).title(),
    "lower": lambda s: go_str(s).lower(),
    "upper": lambda s: go_str(s).upper(),
    "pad": _pad,
    "truncate": _truncate,
    "println": lambda *a: " ".join(go_str(x) for x in a) + "\n",
    "print": lambda *a: "".join(go_str(x) for x in a),
    "printf": _printf,
    "index": _index,
    "len": _len,
    "eq": _eq,
    "ne": lambda a, b: a != b,
    "lt": lambda a, b: a < b,
    "le": lambda a, b: a <= b,
    "gt": lambda a, b: a > b,
    "ge": lambda a, b: a >= b,
    "not": lambda a: not truth(a),
    "and": lambda *a: next((x for x in a if not truth(x)), a[-1]),
    "or": lambda *a: next((x for x in a if truth(x)), a[-1]),
}
