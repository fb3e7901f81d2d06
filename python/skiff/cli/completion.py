"""``skiff completion bash|zsh|fish``: the shell script that completes skiff's commands
and flags (click's completion). Install with, e.g.::

    skiff completion bash > /etc/bash_completion.d/skiff
    skiff completion zsh > "${fpath[1]}/_skiff"
"""

from __future__ import annotations

import click


@click.command("completion")
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
def command(shell: str) -> None:
    """Print the shell completion script for SHELL."""
    from click.shell_completion import get_completion_class

    from skiff.cli.root import cli

    cls = get_completion_class(shell)
    assert cls is not None
    click.echo(cls(cli, {}, "skiff", "_SKIFF_COMPLETE").source())
