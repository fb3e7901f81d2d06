"""The object every command gets as ``ctx.obj``: where the daemon is, and a client
for it, made on first use."""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from skiff.client import APIClient
    from skiff.hosts import Host


class App:
    def __init__(self, host_flag: str | None = None, debug: bool = False) -> None:
        self.host_flag = host_flag
        self.debug = debug

    @cached_property
    def host(self) -> Host:
        from skiff.hosts import client_host

        return client_host(self.host_flag)

    @cached_property
    def client(self) -> APIClient:
        from skiff.client import APIClient

        return APIClient(self.host)
