"""Descriptors made ahead of need (monitors waiting for their command line, network
namespaces): a thread of the stock's own keeps a few ready, so that a container
start takes one instead of waiting for it to be made."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

#: The longest wait between failed attempts (seconds).
MAX_RETRY_DELAY = 60.0
#: The nice value of work done ahead of need or after the fact (stocks, removing
#: trees): on a small machine it must not take CPU from a container start.
BACKGROUND_NICE = 19


def lower_priority() -> None:
    """Makes the calling thread (and what it starts) yield to everything else."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), BACKGROUND_NICE)
    except OSError as err:
        log.debug("cannot lower this thread's priority: %s", err)


class FdStock:
    def __init__(self, size: int, make: Callable[[], int], name: str) -> None:
        self.size = size
        self._make = make
        self._name = name
        self._ready: list[int] = []
        self._cond = threading.Condition()
        self._closed = False
        self._thread: threading.Thread | None = None

    def take(self) -> int:
        """A ready descriptor (now the caller's), or -1 when none is; the first call
        starts the filling thread."""
        with self._cond:
            self._start_filling()
            fd = self._ready.pop() if self._ready else -1
            self._cond.notify()
        return fd

    def _start_filling(self) -> None:
        if self._thread is None and not self._closed and self.size > 0:
            self._thread = threading.Thread(target=self._fill, name=self._name, daemon=True)
            self._thread.start()

    def close(self) -> None:
        """Stops filling and closes what is ready."""
        with self._cond:
            self._closed = True
            ready, self._ready = self._ready, []
            self._cond.notify_all()
        for fd in ready:
            os.close(fd)

    def _fill(self) -> None:
        # What it makes takes the priority back when used (skiff-monitor does).
        lower_priority()
        delay = 1.0
        while True:
            with self._cond:
                while not self._closed and len(self._ready) >= self.size:
                    self._cond.wait()
                if self._closed:
                    return
            try:
                fd = self._make()
            except Exception as err:  # logged; tried again later, less often each time
                log.warning("%s: making one ahead of need: %s", self._name, err)
                time.sleep(delay)
                delay = min(delay * 2, MAX_RETRY_DELAY)
                continue
            delay = 1.0
            with self._cond:
                if self._closed:
                    os.close(fd)
                    return
                self._ready.append(fd)
