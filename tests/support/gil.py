"""Checks that a native call releases the GIL: a Python thread keeps counting while
the call runs. Held for the whole call, the counter could only advance at the switch
points before and after it (a handful of ticks); released, it spins freely."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

#: Ticks that prove the counter ran during the call.
MIN_TICKS = 10_000


def ticks_during(call: Callable[[], T]) -> tuple[int, T]:
    """Runs ``call`` while another thread counts; returns (ticks during it, result)."""
    ticks = 0
    done = threading.Event()

    def count() -> None:
        nonlocal ticks
        while not done.is_set():
            ticks += 1

    worker = threading.Thread(target=count)
    worker.start()
    try:
        before = ticks
        result = call()
        during = ticks - before
    finally:
        done.set()
        worker.join()
    return during, result
