"""The root click group (global flags, lazy commands) and the error handling around it:
one line on stderr and docker's exit codes, never a traceback."""

from __future__ import annotations

import os
import sys
from typing import Any

import click

from skiff.cli import COMMANDS
from skiff.cli.app import App


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
    from skiff.cli.outcome import flush, guarded

    def main() -> Any:
        try:
            return cli.main(args=argv, prog_name="skiff", standalone_mode=False)
        except click.exceptions.Exit as err:
            flush()
            sys.exit(err.exit_code)
        except click.UsageError as err:
            # One line: what is wrong and where the help is (docker: 125 for bad usage).
            path = err.ctx.command_path if err.ctx is not None else "skiff"
            sys.stderr.write(f"{path}: {err.format_message()} See '{path} --help'.\n")
            sys.exit(125)
        except click.ClickException as err:
            err.show()
            sys.exit(125 if err.exit_code == 2 else err.exit_code)
        except click.exceptions.Abort:
            raise KeyboardInterrupt from None

    return guarded(main)
