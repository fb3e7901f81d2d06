"""Health checks (``HEALTHCHECK`` / ``--health-*``): a probe command run in the
container every interval, its result kept in ``State.Health`` like Docker's.

Status starts as "starting"; a success makes it "healthy"; ``Retries`` failures in a
row (not counted during ``StartPeriod``) make it "unhealthy". The last five probe
results are kept in ``Log`` with their output (up to 4 KiB each). Each change of
status is a ``health_status: <status>`` event.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import logging
import subprocess
import time
from typing import TYPE_CHECKING, Any

from skiff.engine.container import Container
from skiff.errors import SkiffError
from skiff.timefmt import rfc3339_nano

if TYPE_CHECKING:
    from skiff.engine.containers import ContainerService

log = logging.getLogger("skiff.engine.health")

NS = 1_000_000_000
DEFAULT_INTERVAL = 30 * NS
DEFAULT_TIMEOUT = 30 * NS
DEFAULT_START_INTERVAL = 5 * NS
DEFAULT_RETRIES = 3
LOG_ENTRIES = 5
OUTPUT_LIMIT = 4096


def probe_args(test: list[str]) -> list[str] | None:
    """The command of a Healthcheck.Test, or None when there is no check."""
    if not test or test[0] == "NONE":
        return None
    if test[0] == "CMD":
        return list(test[1:]) or None
    if test[0] == "CMD-SHELL":
        return ["/bin/sh", "-c", " ".join(test[1:])]
    return list(test)  # a bare command, as older clients send


def configured(c: Container) -> dict[str, Any] | None:
    hc = c.config.get("Healthcheck") or None
    if not hc or probe_args(list(hc.get("Test") or [])) is None:
        return None
    return dict(hc)


class HealthMonitor:
    """Runs the checks of one running container until cancelled."""

    def __init__(self, svc: ContainerService, c: Container, check: dict[str, Any]) -> None:
        self.svc = svc
        self.c = c
        self.check = check
        self.args = probe_args(list(check.get("Test") or [])) or []
        self.interval = (check.get("Interval") or DEFAULT_INTERVAL) / NS
        self.timeout = (check.get("Timeout") or DEFAULT_TIMEOUT) / NS
        self.start_period = (check.get("StartPeriod") or 0) / NS
        self.start_interval = (check.get("StartInterval") or DEFAULT_START_INTERVAL) / NS
        self.retries = int(check.get("Retries") or DEFAULT_RETRIES)
        self.started = time.monotonic()

    async def run(self) -> None:
        c = self.c
        c.state.health = {"Status": "starting", "FailingStreak": 0, "Log": []}
        self.svc.save(c)
        while True:
            in_start = time.monotonic() - self.started < self.start_period
            await asyncio.sleep(self.start_interval if in_start else self.interval)
            if c.state.status != "running":
                if c.state.status == "paused":
                    continue
                return
            await self.probe_once()

    async def probe_once(self) -> None:
        c = self.c
        start = rfc3339_nano()
        code, output = await asyncio.to_thread(self._exec)
        health = copy.deepcopy(c.state.health) or {"Status": "starting", "FailingStreak": 0}
        entries = list(health.get("Log") or [])
        entries.append({"Start": start, "End": rfc3339_nano(), "ExitCode": code, "Output": output})
        health["Log"] = entries[-LOG_ENTRIES:]
        before = health.get("Status")
        in_start = time.monotonic() - self.started < self.start_period
        if code == 0:
            health["Status"] = "healthy"
            health["FailingStreak"] = 0
        elif not in_start:
            health["FailingStreak"] = int(health.get("FailingStreak", 0)) + 1
            if health["FailingStreak"] >= self.retries:
                health["Status"] = "unhealthy"
        c.state.health = health
        self.svc.save(c)
        if health["Status"] != before:
            self.svc.publish(c, f"health_status: {health['Status']}")

    def _exec(self) -> tuple[int, str]:
        """Runs the probe in the container (through the runtime's exec)."""
        try:
            base = json.loads((self.c.root / "config.json").read_text())["process"]
        except (OSError, ValueError, KeyError):
            return -1, "cannot read the container's process config"
        process = {**base, "args": self.args, "terminal": False}
        process.pop("consoleSize", None)
        try:
            proc = self.svc.runtime.exec(self.c.id, process, timeout=self.timeout)
        except subprocess.TimeoutExpired:
            return -1, f"Health check exceeded timeout ({self.timeout:g}s)"
        except SkiffError as err:
            return -1, err.message
        output = (proc.stdout or b"") + (proc.stderr or b"")
        return proc.returncode, output[:OUTPUT_LIMIT].decode(errors="replace")


def start(svc: ContainerService, c: Container) -> asyncio.Task[None] | None:
    check = configured(c)
    if check is None:
        c.state.health = None
        return None
    monitor = HealthMonitor(svc, c, check)

    async def guarded() -> None:
        with contextlib.suppress(asyncio.CancelledError):
            await monitor.run()

    return asyncio.ensure_future(guarded())
