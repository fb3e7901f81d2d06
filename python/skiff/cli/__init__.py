"""``skiff``: the command line, a click group over the Engine API.

Commands are listed here by name and imported only when invoked, so that
``skiff --version`` and other short commands start fast. Each command lives in its
own module with a ``command`` attribute.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from skiff.cli.app import App

#: command name -> module under skiff.cli holding ``command`` (or ``module:attribute``).
COMMANDS = {
    "login": "skiff.cli.login",
    "logout": "skiff.cli.login:logout_command",
    "version": "skiff.cli.version",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        module_name = COMMANDS.get(cmd_name)
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


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "-H",
    "--host",
    metavar="ADDR",
    help="Daemon socket to connect to (default: $SKIFF_HOST, $DOCKER_HOST, unix:///run/skiff/skiff.sock).",
)
@click.option("-D", "--debug", is_flag=True, help="Enable debug output.")
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
def cli(ctx: click.Context, host: str | None, debug: bool) -> None:
    """A Docker-compatible container engine."""
    ctx.obj = App(host_flag=host, debug=debug)


def main(argv: list[str] | None = None) -> Any:
    """Entry point: runs the CLI, turning Skiff errors into one line and docker's exit codes."""
    from skiff.errors import SkiffError

    try:
        return cli.main(args=argv, prog_name="skiff", standalone_mode=False)
    except click.exceptions.Exit as err:
        sys.exit(err.exit_code)
    except click.ClickException as err:
        err.show()
        sys.exit(125 if err.exit_code == 2 else err.exit_code)  # docker: 125 for bad usage
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except SkiffError as err:
        from skiff.errors import exit_code

        prefix = "Error response from daemon: " if err.from_daemon else ""
        click.echo(f"{prefix}{err.message}", err=True)
        sys.exit(exit_code(err))
