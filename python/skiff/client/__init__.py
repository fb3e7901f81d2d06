"""The Engine API client that the CLI (and tests) use to talk to skiffd, or to any
Docker-compatible daemon. Kept light, for the CLI's start: HTTP/1.1 spoken on the
socket (:mod:`skiff.client.api`), JSON through the C accelerator json itself uses
(:mod:`skiff.client.fastjson`)."""

from skiff.client.api import APIClient, Response

__all__ = ["APIClient", "Response"]
