"""``skiff login [SERVER]`` and ``skiff logout [SERVER]``, with docker's flags."""

from __future__ import annotations

import sys

import click


@click.command("login")
@click.argument("server", required=False)
@click.option("-u", "--username", help="Username.")
@click.option("-p", "--password", help="Password (prefer --password-stdin).")
@click.option("--password-stdin", is_flag=True, help="Take the password from stdin.")
def command(
    server: str | None, username: str | None, password: str | None, password_stdin: bool
) -> None:
    """Log in to a registry (Docker Hub when no server is given)."""
    from skiff.registry.login import login

    if password_stdin:
        if password:
            raise click.UsageError("--password and --password-stdin are mutually exclusive")
        password = sys.stdin.read().rstrip("\n")
    if not username:
        username = click.prompt("Username")
    if password is None:
        password = click.prompt("Password", hide_input=True)
    elif not password_stdin:
        click.echo(
            "WARNING! Using --password via the CLI is insecure. Use --password-stdin.", err=True
        )
    click.echo(login(server, username or "", password))


@click.command("logout")
@click.argument("server", required=False)
def logout_command(server: str | None) -> None:
    """Log out from a registry."""
    from skiff.registry.login import logout

    click.echo(logout(server))
