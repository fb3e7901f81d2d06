"""The hot commands (``ps``, ``run``) without importing click.

Importing click costs the CLI 15-30 ms at every start (it pulls in typing, inspect,
uuid, datetime). ``ps`` and ``run`` declare their flags once, as data (:class:`Opt`);
click builds its options from that table for help, completion and every unusual case,
and :func:`parse` reads the same table here for the common cases. Anything this parser
does not know for sure (``--help``, an unknown flag, a bad value, ``--``) makes it
give up, and click parses the command line instead, errors and all.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import Any


class GiveUp(Exception):
    """Let click parse this command line."""


class Opt:
    """One flag: its names, where its value goes, and what it takes."""

    __slots__ = ("choices", "convert", "decls", "default", "dest", "help", "kind", "metavar")

    def __init__(
        self,
        *decls: str,
        dest: str | None = None,
        kind: str = "value",  # "flag", "value", "multi", "bool" (pflag's --x=false)
        default: Any = None,
        convert: Callable[[str], Any] | None = None,
        choices: Sequence[str] | None = None,
        help: str = "",
        metavar: str | None = None,
    ) -> None:
        flags = [d for d in decls if d.startswith("-")]
        self.decls = tuple(flags)
        plain = [d for d in decls if not d.startswith("-")]
        longest = max(flags, key=len).lstrip("-").replace("-", "_")
        self.dest = dest or (plain[0] if plain else longest)
        self.kind = kind
        if default is None:
            default = {"flag": False, "multi": (), "bool": False}.get(kind)
        self.default = default
        self.convert = convert
        self.choices = choices
        self.help = help
        self.metavar = metavar

    def value(self, text: str) -> Any:
        if self.choices is not None and text.lower() not in self.choices:
            raise GiveUp
        if self.convert is not None:
            try:
                return self.convert(text)
            except ValueError:
                raise GiveUp from None
        return text

    def click_option(self) -> Callable[[Any], Any]:
        """The same flag as a click option."""
        import click

        kw: dict[str, Any] = {"help": self.help}
        if self.metavar:
            kw["metavar"] = self.metavar
        if self.kind == "flag":
            kw["is_flag"] = True
        elif self.kind == "multi":
            kw["multiple"] = True
        elif self.kind == "bool":
            from skiff.cli.common import go_bool_option

            return go_bool_option(*self.decls, default=bool(self.default), help=self.help)
        elif self.default is not None:
            kw["default"] = self.default
            kw["show_default"] = True
        if self.choices is not None:
            kw["type"] = click.Choice(list(self.choices), case_sensitive=False)
        elif self.convert in (int, float):
            kw["type"] = self.convert
        names = self.decls if self.dest in self.decls else (*self.decls, self.dest)
        return click.option(*names, **kw)


def _bool(text: str) -> bool:
    low = text.lower()
    if low in ("1", "t", "true"):
        return True
    if low in ("0", "f", "false"):
        return False
    raise GiveUp


def parse(
    opts: Sequence[Opt], args: Sequence[str], positionals: int, rest: bool
) -> tuple[dict[str, Any], list[str]]:
    """Flags into a dict (click's names and defaults) and the positional arguments.

    ``positionals``: how many come before the rest; with ``rest``, everything after
    them is left as is (``run IMAGE COMMAND...``); without it, flags may follow them."""
    table: dict[str, Opt] = {d: o for o in opts for d in o.decls}
    values: dict[str, Any] = {o.dest: o.default for o in opts}
    multi: dict[str, list[Any]] = {}
    found: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        if rest and len(found) >= positionals:
            found.append(arg)
            continue
        if arg in ("-h", "--help", "--") or arg == "-":
            raise GiveUp
        if not arg.startswith("-"):
            found.append(arg)
            continue
        if arg.startswith("--"):
            name, eq, attached = arg.partition("=")
            opt = table.get(name)
            if opt is None:
                raise GiveUp
            if opt.kind == "flag":
                if eq:
                    raise GiveUp
                values[opt.dest] = True
                continue
            if opt.kind == "bool":
                values[opt.dest] = _bool(attached) if eq else True
                continue
            if not eq:
                if i >= len(args):
                    raise GiveUp
                attached = args[i]
                i += 1
            _store(opt, attached, values, multi)
            continue
        # short flags, maybe clustered (-it), the last one maybe with a value (-p80:80)
        j = 1
        while j < len(arg):
            opt = table.get("-" + arg[j])
            if opt is None:
                raise GiveUp
            j += 1
            if opt.kind == "flag":
                values[opt.dest] = True
                continue
            if opt.kind == "bool":
                if j < len(arg):
                    raise GiveUp
                values[opt.dest] = True
                continue
            attached = arg[j:]
            if not attached:
                if i >= len(args):
                    raise GiveUp
                attached = args[i]
                i += 1
            _store(opt, attached, values, multi)
            break
    for dest, items in multi.items():
        values[dest] = tuple(items)
    if len(found) < positionals or (not rest and len(found) > positionals):
        raise GiveUp
    return values, found


def _store(opt: Opt, text: str, values: dict[str, Any], multi: dict[str, list[Any]]) -> None:
    if opt.kind == "multi":
        multi.setdefault(opt.dest, []).append(opt.value(text))
    else:
        values[opt.dest] = opt.value(text)


def global_flags(args: list[str]) -> tuple[str | None, bool, list[str]]:
    """``-H ADDR``/``--host ADDR`` and ``-D`` before the command; gives up on others."""
    host = None
    debug = False
    i = 0
    while i < len(args) and args[i].startswith("-"):
        arg = args[i]
        if arg in ("-H", "--host") and i + 1 < len(args):
            host = args[i + 1]
            i += 2
        elif arg.startswith("--host="):
            host = arg[len("--host=") :]
            i += 1
        elif arg in ("-D", "--debug"):
            debug = True
            i += 1
        else:
            raise GiveUp
    return host, debug, args[i:]


#: Commands with a fast path: name -> module with ``fast(app, args)``.
FAST = {"ps": "skiff.cli.ps", "run": "skiff.cli.run"}


def try_fast(args: list[str]) -> int | None:
    """Runs ``args`` without click when it can; None when click must."""
    try:
        host, debug, rest = global_flags(args)
    except GiveUp:
        return None
    if not rest or rest[0] not in FAST:
        return None
    from skiff.cli.app import App

    app = App(host_flag=host, debug=debug)
    # The daemon answers the version ping while the command is imported and parsed.
    app.ping_ahead()
    name = FAST[rest[0]]
    __import__(name)  # not importlib: it costs the start ~1 ms
    try:
        run = sys.modules[name].fast_args(rest[1:])
    except GiveUp:
        app.close()
        return None
    from skiff.cli.outcome import guarded

    try:
        guarded(lambda: run(app))
        return 0
    finally:
        app.close()
        sys.stdout.flush()
