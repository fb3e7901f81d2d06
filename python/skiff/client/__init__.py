"""The Engine API client that the CLI (and tests) use to talk to skiffd, or to any
Docker-compatible daemon. Kept light: the standard library's http.client only."""

from skiff.client.api import APIClient, Response

__all__ = ["APIClient", "Response"]
