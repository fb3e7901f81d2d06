"""The object every command gets as ``ctx.obj``: where the daemon is, and a client
for it, made on first use.

Embedded default: when the CLI would talk to the default socket (no ``-H``, no host in
the environment, no context), nothing answers there, and the user is root, it starts
skiffd itself (:mod:`skiff.cli.embedded`) and goes on — unless
``SKIFF_NO_EMBEDDED_DAEMON=1`` says not to (the test suite sets it, so that a test
that forgets its daemon's address fails instead of leaving a daemon on the host).
"""

from __future__ import annotations

import os

TYPE_CHECKING = False  # typing itself costs the CLI's start ~10 ms
if TYPE_CHECKING:
    from skiff.client import APIClient
    from skiff.hosts import Host


#: Set to 1 to never start skiffd from the CLI.
NO_EMBEDDED_ENV = "SKIFF_NO_EMBEDDED_DAEMON"


class App:
    def __init__(
        self, host_flag: str | None = None, debug: bool = False, context_flag: str | None = None
    ) -> None:
        self.host_flag = host_flag
        self.context_flag = context_flag
        self.debug = debug
        #: True when the address is the built-in default (the embedded daemon's).
        self.default_host = False
        self._host: Host | None = None
        self._client: APIClient | None = None

    # Plain properties caching by hand, not functools.cached_property: importing
    # functools (and collections through it) costs the CLI's start a few ms.
    @property
    def host(self) -> Host:
        if self._host is None:
            self._host = self._find_host()
        return self._host

    def _find_host(self) -> Host:
        from skiff.hosts import DEFAULT_HOST, parse_host

        if self.host_flag:
            return parse_host(self.host_flag)
        if not self.context_flag:
            for var in ("SKIFF_HOST", "DOCKER_HOST"):
                if os.environ.get(var):
                    return parse_host(os.environ[var])
        from skiff.cli import contexts

        name = self.context_flag or contexts.current_name()
        if name != contexts.DEFAULT:
            return parse_host(contexts.load(name).host)
        self.default_host = True
        return parse_host(DEFAULT_HOST)

    @property
    def client(self) -> APIClient:
        if self._client is None:
            from skiff.client.api import APIClient

            host = self.host
            hook = None
            embedded_ok = os.environ.get(NO_EMBEDDED_ENV, "") in ("", "0")
            if self.default_host and os.geteuid() == 0 and embedded_ok:
                hook = _start_embedded
            self._client = APIClient(host, on_unreachable=hook)
        return self._client

    def ping_ahead(self) -> None:
        """The client's :meth:`~skiff.client.api.APIClient.ping_ahead`, quiet on any
        failure (a bad address, an unreadable context): the command meets it again when
        it connects, and reports it the way commands report errors."""
        try:
            self.client.ping_ahead()
        except Exception:
            return

    def close(self) -> None:
        if self._client is not None:
            self._client.close()


def _start_embedded(host: Host) -> bool:
    from skiff.cli.embedded import start_daemon

    return start_daemon(host)


class StatusError(Exception):
    """Ends the command with ``code``, after printing ``message`` (if any) on stderr:
    a container's exit status, or docker's 125/126/127 for a failed start."""

    def __init__(self, code: int, message: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.message = message
