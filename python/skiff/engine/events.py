"""The daemon's event stream (``GET /events``): what happened to containers, images,
networks and volumes, in moby's message shape.

Events are kept in a ring of the last :data:`HISTORY` (dockerd keeps 256) so that a
client asking ``since`` a past time gets them replayed, then the live ones. Publishing
is thread-safe: engine work running in threads publishes through the loop.
"""

from __future__ import annotations

import asyncio
import collections
import threading
import time
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from typing import Any

HISTORY = 256


@dataclass(frozen=True)
class Event:
    type: str  # container, image, network, volume, daemon
    action: str  # create, start, die, destroy, pull, tag, ...
    actor_id: str
    attributes: dict[str, str]
    time_nano: int

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.type in ("container", "image"):
            # The pre-1.22 fields docker still sends for these two types.
            out["status"] = self.action
            out["id"] = self.actor_id
            if self.type == "container" and "image" in self.attributes:
                out["from"] = self.attributes["image"]
        out.update(
            {
                "Type": self.type,
                "Action": self.action,
                "Actor": {"ID": self.actor_id, "Attributes": dict(self.attributes)},
                "scope": "local",
                "time": self.time_nano // 1_000_000_000,
                "timeNano": self.time_nano,
            }
        )
        return out


#: filter name -> how an event is matched against one of its values.
def _matches(event: Event, name: str, values: Iterable[str]) -> bool:
    values = list(values)
    if name == "type":
        return event.type in values
    if name == "event":
        # "exec_start: sh" matches a filter of "exec_start" (docker matches the prefix).
        return any(event.action == v or event.action.split(":")[0] == v for v in values)
    if name in ("container", "image", "network", "volume", "daemon"):
        if event.type != name and not (name == "image" and event.type == "container"):
            return False
        keys = {event.actor_id, event.attributes.get("name", "")}
        if name == "image" and event.type == "container":
            keys = {event.attributes.get("image", "")}
        return any(v in keys or (len(v) >= 4 and event.actor_id.startswith(v)) for v in values)
    if name == "label":
        for v in values:
            key, eq, val = v.partition("=")
            if key not in event.attributes:
                continue
            if not eq or event.attributes[key] == val:
                return True
        return False
    if name == "scope":
        return "local" in values
    return True


class EventFilter:
    """Docker's event filters: each name must match one of its values."""

    NAMES = frozenset(
        ["type", "event", "container", "image", "network", "volume", "daemon", "label", "scope"]
    )

    def __init__(self, filters: dict[str, list[str]] | None = None) -> None:
        self.filters = {k: v for k, v in (filters or {}).items() if v}

    def __call__(self, event: Event) -> bool:
        return all(_matches(event, name, values) for name, values in self.filters.items())


class EventBus:
    def __init__(self) -> None:
        self._history: collections.deque[Event] = collections.deque(maxlen=HISTORY)
        self._subscribers: set[asyncio.Queue[Event]] = set()
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def publish(
        self, type: str, action: str, actor_id: str, attributes: dict[str, str] | None = None
    ) -> Event:
        event = Event(type, action, actor_id, dict(attributes or {}), time.time_ns())
        with self._lock:
            self._history.append(event)
            subscribers = list(self._subscribers)
        loop = self._loop
        for queue in subscribers:
            if loop is None:
                queue.put_nowait(event)
            else:
                try:
                    running = asyncio.get_running_loop()
                except RuntimeError:
                    running = None
                if running is loop:
                    queue.put_nowait(event)
                else:
                    loop.call_soon_threadsafe(queue.put_nowait, event)
        return event

    @property
    def listeners(self) -> int:
        with self._lock:
            return len(self._subscribers)

    def history(self) -> list[Event]:
        with self._lock:
            return list(self._history)

    async def stream(
        self,
        accept: EventFilter,
        since_ns: int | None = None,
        until_ns: int | None = None,
    ) -> AsyncIterator[Event]:
        """Past events from ``since_ns`` (when given), then live ones until ``until_ns``
        (None: until the client goes away)."""
        queue: asyncio.Queue[Event] = asyncio.Queue()
        with self._lock:
            past = list(self._history)
            self._subscribers.add(queue)
        try:
            if since_ns is not None:
                for event in past:
                    in_range = event.time_nano >= since_ns and (
                        until_ns is None or event.time_nano <= until_ns
                    )
                    if in_range and accept(event):
                        yield event
            if until_ns is not None and until_ns <= time.time_ns():
                return
            while True:
                timeout = None
                if until_ns is not None:
                    timeout = max(0.0, (until_ns - time.time_ns()) / 1e9)
                try:
                    event = await asyncio.wait_for(queue.get(), timeout)
                except TimeoutError:
                    return
                if until_ns is not None and event.time_nano > until_ns:
                    return
                if accept(event):
                    yield event
        finally:
            with self._lock:
                self._subscribers.discard(queue)
