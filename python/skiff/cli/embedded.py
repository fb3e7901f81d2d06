"""The embedded default: ``skiff`` starts skiffd itself when nothing answers on the
default socket and the user is root, so that the first ``skiff run`` on a fresh
machine just works.

The daemon runs in a session of its own (``setsid``), outlives this command, and logs
to ``/var/log/skiff/skiffd.log``; the CLI says so once, on stderr, when it starts it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from skiff.hosts import Host

LOG = Path("/var/log/skiff/skiffd.log")
#: How long to wait for the new daemon to answer.
WAIT = 30.0


def skiffd_argv() -> list[str]:
    beside = Path(sys.executable).parent / "skiffd"
    if beside.exists():
        return [str(beside)]
    found = shutil.which("skiffd")
    return [found] if found else [sys.executable, "-m", "skiff.daemon"]


def start_daemon(host: Host) -> bool:
    """Starts skiffd on ``host`` (the default socket) and waits until it answers."""
    if host.scheme != "unix" or os.geteuid() != 0:
        return False
    from skiff.client.api import Connection

    LOG.parent.mkdir(parents=True, exist_ok=True)
    with open(LOG, "ab") as log:
        proc = subprocess.Popen(
            [*skiffd_argv(), "-H", str(host)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
            close_fds=True,
        )
    sys.stderr.write(f"Started skiffd (no daemon was running); it logs to {LOG}\n")
    sys.stderr.flush()
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            from skiff.errors import Unavailable

            raise Unavailable(f"skiffd exited with {proc.returncode} at start; see {LOG}")
        try:
            Connection(host, 1.0).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False
