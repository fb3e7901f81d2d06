"""skiff.engine.standby's pool logic, with stand-ins for the containers it makes (the
real ones are in tests/integration/test_standby.py): which template a standby is
made for, when one is thrown away, and that an empty monitor pool is waited out
rather than counted as a failure."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

from skiff.engine import standby as sb
from skiff.engine.monitor import NoMonitorReady


@dataclass
class FakeStandby:
    template: sb.Template
    dead: bool = False

    def alive(self) -> bool:
        return not self.dead


def template(image: str = "sha256:a", **host_config: Any) -> sb.Template:
    return sb.Template(image, ("l1",), ("/l1",), {}, host_config, "true", ())


class Maker:
    """Makes FakeStandby objects; the first ``busy`` calls find no monitor ready,
    the next ``broken`` ones fail."""

    def __init__(self, busy: int = 0, broken: int = 0) -> None:
        self.busy, self.broken = busy, broken
        self.calls = 0
        self.discarded: list[FakeStandby] = []
        self.lock = threading.Lock()

    def make(self, t: sb.Template) -> Any:
        with self.lock:
            self.calls += 1
            if self.busy:
                self.busy -= 1
                raise NoMonitorReady("none ready")
            if self.broken:
                self.broken -= 1
                raise RuntimeError("broken")
        return FakeStandby(t)

    def discard(self, s: Any) -> None:
        with self.lock:
            self.discarded.append(s)


def ready(pool: sb.StandbyPool) -> bool:
    """A standby is ready (made and kept), without taking it."""
    with pool._cond:
        return pool._ready is not None


def wanting(m: Maker, t: sb.Template) -> sb.StandbyPool:
    """A pool of ``m``'s standbys, asked for one like ``t``."""
    pool = sb.StandbyPool(m.make, m.discard)
    pool.want(t)
    return pool


def wait_until(check: Any, timeout: float = 5) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "not reached in time"
        time.sleep(0.01)


def test_one_is_made_like_the_template_and_taken_by_its_key() -> None:
    m = Maker()
    t = template()
    pool = wanting(m, t)
    wait_until(lambda: ready(pool))
    assert pool.take(("sha256:b", ("/l1",), False)) is None  # another image: kept
    got = pool.take(t.key)
    assert got is not None and got.template is t
    assert pool.take(t.key) is None  # taken: one at a time
    pool.close()


def test_an_empty_monitor_pool_is_waited_out_not_counted_as_a_failure() -> None:
    m = Maker(busy=sb.MAX_FAILURES + 2)
    t = template()
    pool = wanting(m, t)
    wait_until(lambda: m.calls == sb.MAX_FAILURES + 3)
    wait_until(lambda: pool.take(t.key) is not None)
    pool.close()


def test_failures_give_the_template_up_until_another_comes() -> None:
    m = Maker(broken=sb.MAX_FAILURES)
    t = template()
    pool = wanting(m, t)
    wait_until(lambda: m.calls == sb.MAX_FAILURES)
    time.sleep(0.1)
    assert m.calls == sb.MAX_FAILURES and pool.take(t.key) is None
    other = template(Memory=1 << 26)
    pool.want(other)
    wait_until(lambda: pool.take(other.key) is not None)
    pool.close()


def test_a_new_template_replaces_the_ready_one_and_hold_flushes() -> None:
    m = Maker()
    first = template()
    pool = wanting(m, first)
    wait_until(lambda: ready(pool))
    second = template(Memory=1 << 26)  # same key, another host config
    pool.want(second)
    wait_until(lambda: m.calls == 2 and len(m.discarded) == 1)
    assert m.discarded[0].template is first
    pool.hold()  # thrown away, none made while held
    assert len(m.discarded) == 2
    pool.want(second)
    time.sleep(0.1)
    assert m.calls == 2
    pool.release()
    wait_until(lambda: m.calls == 3)
    pool.close()
    assert len(m.discarded) == 3  # the ready one, at close


def test_a_dead_one_is_not_given_and_is_replaced() -> None:
    m = Maker()
    t = template()
    pool = wanting(m, t)
    wait_until(lambda: ready(pool))
    with pool._cond:
        assert pool._ready is not None
        pool._ready.dead = True  # type: ignore[attr-defined]
    assert pool.take(t.key) is None
    wait_until(lambda: m.calls == 2 and pool.take(t.key) is not None)
    pool.close()


def test_disabled_makes_nothing() -> None:
    m = Maker()
    pool = sb.StandbyPool(m.make, m.discard, enabled=False)
    pool.want(template())
    time.sleep(0.05)
    assert m.calls == 0
    pool.close()
