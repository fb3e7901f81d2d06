"""Docker's JSON progress messages for pull and push, sent to a callback (the daemon
writes them as newline-delimited JSON). The callback may be called from several
threads at once; this serializes the calls."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Final

ProgressFn = Callable[[dict[str, Any]], None]
#: Byte counts between two "Downloading"/"Pushing" updates of one blob.
STEP: Final = 512 * 1024


def short_id(digest: str) -> str:
    """The 12-hex form Docker shows for a layer."""
    return digest.split(":", 1)[-1][:12]


class Progress:
    def __init__(self, fn: ProgressFn | None) -> None:
        self.fn = fn
        self._lock = threading.Lock()

    def send(self, message: dict[str, Any]) -> None:
        if self.fn is None:
            return
        with self._lock:
            self.fn(message)

    def status(
        self,
        status: str,
        id: str | None = None,
        *,
        current: int | None = None,
        total: int | None = None,
    ) -> None:
        message: dict[str, Any] = {"status": status}
        if id is not None:
            message["id"] = id
        if current is not None:
            detail: dict[str, int] = {"current": current}
            if total is not None:
                detail["total"] = total
            message["progressDetail"] = detail
        elif id is not None:
            message["progressDetail"] = {}
        self.send(message)


class Counter:
    """Emits ``status`` with byte counts for one blob, every ``STEP`` bytes."""

    def __init__(self, progress: Progress, status: str, id: str, total: int) -> None:
        self.progress = progress
        self.status = status
        self.id = id
        self.total = total
        self.current = 0
        self._last = -STEP

    def set(self, current: int) -> None:
        self.current = current
        if current - self._last >= STEP or current >= self.total:
            self._last = current
            self.progress.status(self.status, self.id, current=current, total=self.total)

    def add(self, n: int) -> None:
        self.set(self.current + n)
