"""``skiff``: the command line, a click group over the Engine API.

Start-up is kept short: ``skiff --version`` answers before click is imported, and
commands are listed here by name and imported only when invoked (one module per
command or group, each with a ``command`` attribute or the one named after a colon).
The group itself is in :mod:`skiff.cli.root`.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False  # not typing's: importing typing costs --version ~10 ms
if TYPE_CHECKING:
    from typing import Any, NoReturn

#: command name -> module holding ``command`` (or ``module:attribute``).
COMMANDS = {
    "attach": "skiff.cli.attach",
    "commit": "skiff.cli.images:commit_command",
    "completion": "skiff.cli.completion",
    "container": "skiff.cli.groups:container",
    "context": "skiff.cli.context",
    "cp": "skiff.cli.filesystem:cp_command",
    "create": "skiff.cli.run:create_command",
    "diff": "skiff.cli.filesystem:diff_command",
    "events": "skiff.cli.system:events_command",
    "exec": "skiff.cli.exec",
    "export": "skiff.cli.filesystem:export_command",
    "history": "skiff.cli.images:history_command",
    "image": "skiff.cli.groups:image",
    "images": "skiff.cli.images:images_command",
    "import": "skiff.cli.images:import_command",
    "info": "skiff.cli.system:info_command",
    "inspect": "skiff.cli.inspect",
    "kill": "skiff.cli.lifecycle:kill_command",
    "load": "skiff.cli.images:load_command",
    "login": "skiff.cli.login",
    "logout": "skiff.cli.login:logout_command",
    "logs": "skiff.cli.logs",
    "pause": "skiff.cli.lifecycle:pause_command",
    "port": "skiff.cli.lifecycle:port_command",
    "ps": "skiff.cli.ps",
    "pull": "skiff.cli.images:pull_command",
    "push": "skiff.cli.images:push_command",
    "rename": "skiff.cli.lifecycle:rename_command",
    "restart": "skiff.cli.lifecycle:restart_command",
    "rm": "skiff.cli.lifecycle:rm_command",
    "rmi": "skiff.cli.images:rmi_command",
    "run": "skiff.cli.run:run_command",
    "save": "skiff.cli.images:save_command",
    "start": "skiff.cli.start",
    "stats": "skiff.cli.stats",
    "stop": "skiff.cli.lifecycle:stop_command",
    "system": "skiff.cli.system:system_group",
    "tag": "skiff.cli.images:tag_command",
    "top": "skiff.cli.stats:top_command",
    "unpause": "skiff.cli.lifecycle:unpause_command",
    "update": "skiff.cli.lifecycle:update_command",
    "version": "skiff.cli.version",
    "wait": "skiff.cli.lifecycle:wait_command",
}


def main(argv: list[str] | None = None) -> Any:
    """Entry point: runs the CLI, turning errors into one line and docker's exit codes."""
    args = sys.argv[1:] if argv is None else argv
    if args in (["--version"], ["-v"]):
        from skiff.version import __version__

        sys.stdout.write(f"Skiff version {__version__}\n")
        return 0
    if args and not _completing():
        from skiff.cli.fastpath import try_fast

        try:
            done = try_fast(args)
        except SystemExit as stop:
            if argv is None:
                _exit_now(stop.code)
            raise
        if done is not None:
            if argv is None:
                _exit_now(done)
            return done
    from skiff.cli.root import run

    return run(args)


def _exit_now(code: object) -> NoReturn:
    """Ends the process at once, as ``sys.exit(code)`` would but without the
    interpreter's tear-down (freeing every module and object: ~2 ms of a short
    command). The process is ours (``argv`` was not given): only the standard streams
    have anything left to do."""
    import os

    if code is None:
        status = 0
    elif isinstance(code, int):
        status = code
    else:
        sys.stderr.write(f"{code}\n")
        status = 1
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            continue  # a reader gone away (``| head``): docker is quiet about it too
    os._exit(status & 0xFF)


def _completing() -> bool:
    import os

    return "_SKIFF_COMPLETE" in os.environ


def __getattr__(name: str) -> Any:
    # ``skiff.cli.cli`` and ``skiff.cli.LazyGroup`` without importing click up front.
    if name in ("cli", "LazyGroup"):
        from skiff.cli import root

        return getattr(root, name)
    raise AttributeError(name)
