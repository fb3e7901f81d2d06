"""``skiff version``: the client's version and, when a daemon answers, the daemon's."""

from __future__ import annotations

import platform
import sys
from typing import Any

import click

from skiff.cli.app import App
from skiff.errors import SkiffError
from skiff.version import API_VERSION, __version__


def _client_lines(app: App) -> list[str]:
    from skiff.daemon.routes.system import goarch

    return [
        "Client:",
        f" Version:           {__version__}",
        f" API version:       {API_VERSION}",
        f" Python version:    {platform.python_version()}",
        f" OS/Arch:           linux/{goarch()}",
        f" Host:              {app.host}",
    ]


def _server_lines(info: dict[str, Any]) -> list[str]:
    platform_name = (info.get("Platform") or {}).get("Name") or "Engine"
    lines = [f"Server: {platform_name}"]
    for comp in info.get("Components") or []:
        details = comp.get("Details") or {}
        lines.append(f" {comp.get('Name', '?')}:")
        lines.append(f"  Version:          {comp.get('Version', '')}")
        if "ApiVersion" in details:
            lines.append(
                f"  API version:      {details['ApiVersion']}"
                f" (minimum version {details.get('MinAPIVersion', '')})"
            )
        if "Os" in details:
            lines.append(f"  OS/Arch:          {details['Os']}/{details.get('Arch', '')}")
        if "KernelVersion" in details:
            lines.append(f"  Kernel version:   {details['KernelVersion']}")
        if details.get("GitCommit"):
            lines.append(f"  Git commit:       {details['GitCommit']}")
    return lines


def _client_info(app: App) -> dict[str, Any]:
    """The client's half of ``--format``'s value, with docker's field names."""
    from skiff.daemon.routes.system import goarch

    return {
        "Platform": {"Name": "Skiff"},
        "Version": __version__,
        "ApiVersion": API_VERSION,
        "DefaultAPIVersion": API_VERSION,
        "GoVersion": f"python{platform.python_version()}",
        "Os": "linux",
        "Arch": goarch(),
        "Host": str(app.host),
    }


@click.command("version")
@click.option(
    "-f", "--format", "fmt", help="Format output using a custom template ('json' or a Go template)."
)
@click.pass_obj
def command(app: App, fmt: str | None) -> None:
    """Show the Skiff version information."""
    if fmt:
        from skiff.cli.formatter import render_one

        value: dict[str, Any] = {"Client": _client_info(app), "Server": None}
        failed = None
        try:
            value["Server"] = app.client.version()
        except SkiffError as err:
            failed = err.message
        click.echo(render_one(value, fmt))
        if failed is not None:
            click.echo(failed, err=True)
            sys.exit(1)
        return
    click.echo("\n".join(_client_lines(app)))
    try:
        info = app.client.version()
    except SkiffError as err:
        click.echo("")
        click.echo(err.message, err=True)
        sys.exit(1)
    click.echo("")
    click.echo("\n".join(_server_lines(info)))
