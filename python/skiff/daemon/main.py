"""``skiffd``: start the daemon with dockerd's flags.

    skiffd [-H unix:///run/skiff/skiff.sock]... [--data-root DIR] [--exec-root DIR]
           [--config-file FILE] [--pidfile FILE] [-G GROUP] [-D] [-l LEVEL]

Runs in the foreground and logs to stderr, like dockerd; SIGTERM or SIGINT stop it
cleanly (sockets and pid file removed).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
import time
from collections.abc import Callable
from typing import Any

from skiff.errors import SkiffError

log = logging.getLogger("skiff.daemon")


class _LogfmtFormatter(logging.Formatter):
    """dockerd's log line shape: time="..." level=info msg="..."."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        stamp += f".{int((record.created % 1) * 1_000_000):06d}Z"
        level = {"WARNING": "warning", "CRITICAL": "fatal"}.get(
            record.levelname, record.levelname.lower()
        )
        msg = record.getMessage().replace("\\", "\\\\").replace('"', '\\"')
        line = f'time="{stamp}" level={level} msg="{msg}"'
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="skiffd", description="Skiff's daemon: the Docker Engine API.")
    # Defaults are None so that we know which flags the user gave (see config.load).
    p.add_argument(
        "-H",
        "--host",
        dest="hosts",
        action="append",
        metavar="ADDR",
        help="daemon socket(s) to listen on",
    )
    p.add_argument(
        "--data-root",
        dest="data_root",
        metavar="DIR",
        help="root of persistent state (default /var/lib/skiff)",
    )
    p.add_argument(
        "--exec-root",
        dest="exec_root",
        metavar="DIR",
        help="root of runtime state (default /run/skiff)",
    )
    p.add_argument(
        "--config-file",
        dest="config_file",
        metavar="FILE",
        help="daemon configuration file (default /etc/skiff/daemon.json)",
    )
    p.add_argument(
        "-p",
        "--pidfile",
        dest="pidfile",
        metavar="FILE",
        help="path of the pid file (default /run/skiff/skiffd.pid)",
    )
    p.add_argument(
        "-G",
        "--group",
        dest="group",
        metavar="GROUP",
        help="group of the unix socket (default skiff)",
    )
    p.add_argument(
        "-D", "--debug", dest="debug", action="store_const", const=True, help="debug logging"
    )
    p.add_argument(
        "-l", "--log-level", dest="log_level", choices=["debug", "info", "warn", "error", "fatal"]
    )
    p.add_argument(
        "--tlsverify",
        dest="tlsverify",
        action="store_const",
        const=True,
        help="serve TCP with TLS, requiring client certificates signed by --tlscacert",
    )
    p.add_argument("--tls", dest="tls", action="store_const", const=True, help="use TLS")
    p.add_argument("--tlscacert", dest="tlscacert", metavar="FILE", help="CA of client certs")
    p.add_argument("--tlscert", dest="tlscert", metavar="FILE", help="server certificate")
    p.add_argument("--tlskey", dest="tlskey", metavar="FILE", help="server key")
    p.add_argument("-v", "--version", action="store_true", help="print the version and exit")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.version:
        from skiff.version import __version__

        print(f"Skiff version {__version__}")
        return 0
    from skiff.daemon.config import load

    given: dict[str, Any] = {
        k: v for k, v in vars(args).items() if v is not None and k not in ("config_file", "version")
    }
    try:
        config = load(args.config_file, given)
    except SkiffError as err:
        print(f"skiffd: {err.message}", file=sys.stderr)
        return 1

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_LogfmtFormatter())
    root = logging.getLogger("skiff")
    root.addHandler(handler)
    level = "debug" if config.debug else config.log_level
    root.setLevel({"warn": "WARNING", "fatal": "CRITICAL"}.get(level, level.upper()))

    _keep_inherited_descriptors_from_children()
    try:
        with asyncio.Runner(loop_factory=_loop_factory()) as runner:
            runner.run(_run(config))
    except SkiffError as err:
        log.critical("%s", err.message)
        return 1
    return 0


def _keep_inherited_descriptors_from_children() -> None:
    """Makes the descriptors inherited from whoever started the daemon (above
    stdio) close-on-exec: uvloop does not close a child's descriptors, so an exec's
    runtime or a ``ps`` would keep them (a pipe its reader waits on to end, say)
    for as long as they run. The daemon's own are close-on-exec already."""
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd > 2:
            with contextlib.suppress(OSError):  # (the listing's own, closed by now)
                os.set_inheritable(fd, False)


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop]:
    """uvloop's event loop (libuv): it takes a connection, a read and a write in a
    fraction of what asyncio's own loop spends in Python, and docker-py opens a new
    connection for each container URL it calls (start, wait, delete: three per
    `containers.run`). asyncio's loop where uvloop is missing."""
    try:
        import uvloop
    except ImportError:
        log.warning("uvloop is not installed: using asyncio's event loop")
        return asyncio.new_event_loop
    return uvloop.new_event_loop


async def _run(config: Any) -> None:
    from skiff.daemon.state import Daemon

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    log.info("starting skiffd")
    await Daemon(config).serve_until(stop)


if __name__ == "__main__":
    sys.exit(main())
