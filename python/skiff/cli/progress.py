"""Showing Docker's JSON progress stream (pull, push, load) the way docker does.

On a terminal: one live line per layer id with a progress bar, redrawn in place
(rich), then the final status lines. Elsewhere (a pipe, CI logs): plain lines, one
per status change (``<id>: <status>``), and no bar updates. An ``error`` message
ends the display and raises, so the CLI exits with the engine's code.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import IO, Any

from skiff.errors import SkiffError


class ProgressError(SkiffError):
    """The stream carried an error (``errorDetail``)."""


def _bar(current: int, total: int, width: int = 50) -> str:
    if total <= 0:
        return ""
    filled = min(width, int(width * current / total))
    if filled >= width:
        return f"[{'=' * width}]"
    return f"[{'=' * filled}>{' ' * (width - filled - 1)}]"


def _size(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.3g}{unit}" if unit != "B" else f"{int(n)}B"
        n /= 1000
    return f"{n}"


def line_for(message: dict[str, Any]) -> str:
    """One message as docker prints it: ``<id>: <status> [<bar> <current>/<total>]``."""
    status = str(message.get("status") or message.get("stream") or "")
    detail = message.get("progressDetail") or {}
    current, total = int(detail.get("current") or 0), int(detail.get("total") or 0)
    text = status
    if total:
        text = f"{status} {_bar(current, total)} {_size(current)}/{_size(total)}"
    ident = message.get("id")
    return f"{ident}: {text}" if ident else text


def display(messages: Iterable[dict[str, Any]], out: IO[str], *, tty: bool | None = None) -> None:
    """Shows a progress stream on ``out``; raises ProgressError on an error message."""
    tty = out.isatty() if tty is None else tty
    if not tty:
        last: dict[str, str] = {}
        for m in messages:
            _check(m)
            ident = str(m.get("id") or "")
            status = str(m.get("status") or "")
            if ident and last.get(ident) == status:
                continue  # bar updates: only status changes are worth a line
            if ident:
                last[ident] = status
            if status or m.get("stream"):
                out.write(line_for({k: v for k, v in m.items() if k != "progressDetail"}) + "\n")
        out.flush()
        return
    from rich.console import Console
    from rich.live import Live
    from rich.text import Text

    console = Console(file=out, force_terminal=True, highlight=False)
    rows: dict[str, str] = {}
    order: list[str] = []

    def render() -> Text:
        return Text("\n".join(rows[i] for i in order))

    with Live(render(), console=console, refresh_per_second=10, transient=False) as live:
        for m in messages:
            _check(m)
            key = str(m.get("id") or "")
            if key:
                if key not in rows:
                    order.append(key)
                rows[key] = line_for(m)
                live.update(render())
            elif m.get("status") or m.get("stream"):
                live.console.print(line_for(m))


def _check(message: dict[str, Any]) -> None:
    error = message.get("error") or (message.get("errorDetail") or {}).get("message")
    if error:
        raise ProgressError(str(error))
