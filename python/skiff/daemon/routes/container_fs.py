"""Routes being written (issue 6): filled in by the engineer who owns this module."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from skiff.daemon.app import RouteSpec
    from skiff.daemon.state import Daemon


def routes(daemon: Daemon) -> list[RouteSpec]:
    return []
