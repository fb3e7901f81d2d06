"""How a command ends: one line on stderr for every failure, docker's exit codes, never a
traceback (the Skiff errors' table, a container's status, Ctrl-C, a closed pipe)."""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any


def guarded(fn: Callable[[], Any]) -> Any:
    """Runs ``fn``; turns what it raises into a message and ``sys.exit(code)``."""
    from skiff.cli.app import StatusError
    from skiff.errors import SkiffError

    try:
        return fn()
    except StatusError as err:
        flush()
        if err.message:
            sys.stderr.write(err.message + "\n")
        sys.exit(err.code)
    except KeyboardInterrupt:
        sys.stderr.write("\n")
        sys.exit(130)
    except BrokenPipeError:
        # The reader of our output went away (``skiff ps | head``): quiet, like docker.
        quiet_stdout()
        sys.exit(0)
    except SkiffError as err:
        from skiff.errors import exit_code

        prefix = "Error response from daemon: " if err.from_daemon else ""
        flush()
        sys.stderr.write(f"{prefix}{err.message}\n")
        sys.exit(exit_code(err))
    except OSError as err:
        flush()
        name = f": {err.filename}" if err.filename else ""
        sys.stderr.write(f"skiff: {err.strerror or err}{name}\n")
        sys.exit(1)


def flush() -> None:
    try:
        sys.stdout.flush()
    except (BrokenPipeError, ValueError):
        quiet_stdout()


def quiet_stdout() -> None:
    # Python flushes stdout again at exit; point it at /dev/null so that fails silently.
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
