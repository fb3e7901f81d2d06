"""The root click group (global flags, lazy commands) and the error handling around it:
one line on stderr and docker's exit codes, never a traceback."""

from __future__ import annotations

import os
import sys
from typing import Any

import click

from skiff.cli import COMMANDS
from skiff.cli.app import App, StatusError


class LazyGroup(click.Group):
    """A group whose commands are modules imported when used (``name -> module[:attr]``)."""

    def __init__(self, *args: Any, commands_table: dict[str, str] | None = None, **kw: Any):
        super().__init__(*args, **kw)
        self.table = COMMANDS if commands_table is None else commands_table

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(self.table)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        module_name = self.table.get(cmd_name)
        if module_name is None:
            return None
        import importlib

        module, _, attr = module_name.partition(":")
        command: click.Command = getattr(importlib.import_module(module), attr or "command")
        return command


def _print_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if not value or ctx.resilient_parsing:
        return
    from skiff.version import __version__

    click.echo(f"Skiff version {__version__}")
    ctx.exit(0)


CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


@click.group(cls=LazyGroup, context_settings=CONTEXT_SETTINGS)
@click.option(
    "-H",
    "--host",
    metavar="ADDR",
    help="Daemon socket to connect to (default: $SKIFF_HOST, $DOCKER_HOST, the current "
    "context, unix:///run/skiff/skiff.sock).",
)
@click.option(
    "-c",
    "--context",
    "context_name",
    metavar="NAME",
    help='Name of the context to use (overrides $DOCKER_HOST and "skiff context use").',
)
@click.option(
    "--config",
    metavar="DIR",
    help="Location of client config files (default: $DOCKER_CONFIG or ~/.docker).",
)
@click.option("-D", "--debug", is_flag=True, help="Enable debug output.")
@click.option("-l", "--log-level", metavar="LEVEL", hidden=True, help="Accepted for docker's sake.")
@click.option(
    "-v",
    "--version",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=_print_version,
    help="Print version information and quit.",
)
@click.pass_context
def cli(
    ctx: click.Context,
    host: str | None,
    context_name: str | None,
    config: str | None,
    debug: bool,
    log_level: str | None,
) -> None:
    """A Docker-compatible container engine."""
    if config:
        os.environ["DOCKER_CONFIG"] = config
    ctx.obj = App(host_flag=host, debug=debug, context_flag=context_name)
    ctx.call_on_close(ctx.obj.close)


def run(argv: list[str]) -> Any:
    """Runs the group on ``argv``; maps every failure to one line and an exit code."""
    from skiff.errors import SkiffError

    try:
        return cli.main(args=argv, prog_name="skiff", standalone_mode=False)
    except click.exceptions.Exit as err:
        _flush()
        sys.exit(err.exit_code)
    except click.UsageError as err:
        # One line: what is wrong and where the help is (docker: 125 for bad usage).
        path = err.ctx.command_path if err.ctx is not None else "skiff"
        sys.stderr.write(f"{path}: {err.format_message()} See '{path} --help'.\n")
        sys.exit(125)
    except click.ClickException as err:
        err.show()
        sys.exit(125 if err.exit_code == 2 else err.exit_code)
    except (click.exceptions.Abort, KeyboardInterrupt):
        sys.stderr.write("\n")
        sys.exit(130)
    except BrokenPipeError:
        # The reader of our output went away (``skiff ps | head``): quiet, like docker.
        _quiet_stdout()
        sys.exit(0)
    except StatusError as err:
        _flush()
        if err.message:
            sys.stderr.write(err.message + "\n")
        sys.exit(err.code)
    except SkiffError as err:
        from skiff.errors import exit_code

        prefix = "Error response from daemon: " if err.from_daemon else ""
        _flush()
        sys.stderr.write(f"{prefix}{err.message}\n")
        sys.exit(exit_code(err))
    except OSError as err:
        _flush()
        sys.stderr.write(f"skiff: {err.strerror or err}{_filename(err)}\n")
        sys.exit(1)


def _filename(err: OSError) -> str:
    return f": {err.filename}" if err.filename else ""


def _flush() -> None:
    try:
        sys.stdout.flush()
    except (BrokenPipeError, ValueError):
        _quiet_stdout()


def _quiet_stdout() -> None:
    # Python flushes stdout again at exit; point it at /dev/null so that fails silently.
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
