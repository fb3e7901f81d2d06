"""``skiff inspect``: containers and images as JSON, or through ``-f TEMPLATE``."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from skiff.cli.app import App, StatusError
from skiff.errors import NotFound

KINDS = ("container", "image")


def lookup(app: App, name: str, kind: str | None, size: bool) -> Any:
    """The object ``name`` names: a container, else an image (or only ``kind``)."""
    for k in (kind,) if kind else KINDS:
        try:
            if k == "container":
                return app.client.get(f"/containers/{name}/json", size=size or None)
            return app.client.get(f"/images/{name}/json")
        except NotFound:
            continue
    raise NotFound(f"No such {kind or 'object'}: {name}")


def inspect_all(
    app: App, names: tuple[str, ...], fmt: str | None, kind: str | None, size: bool
) -> None:
    from skiff.cli.formatter import render_one

    found: list[Any] = []
    failed = False
    for name in names:
        try:
            obj = lookup(app, name, kind, size)
        except NotFound as err:
            failed = True
            sys.stderr.write(
                f"Error: {err.message}\n"
                if not err.from_daemon
                else f"Error response from daemon: {err.message}\n"
            )
            continue
        if fmt:
            sys.stdout.write(render_one(obj, fmt) + "\n")
        else:
            found.append(obj)
    if not fmt:
        text = json.dumps(found, indent=4, ensure_ascii=False)
        sys.stdout.write(text + "\n")
    if failed:
        raise StatusError(1)


@click.command("inspect")
@click.argument("names", nargs=-1, required=True)
@click.option(
    "-f", "--format", "fmt", help="Format output using a custom template ('json' or a Go template)."
)
@click.option(
    "-s", "--size", is_flag=True, help="Display total file sizes if the type is container."
)
@click.option(
    "--type", "kind", type=click.Choice(KINDS), help="Only inspect objects of the given type."
)
@click.pass_obj
def command(
    app: App, names: tuple[str, ...], fmt: str | None, size: bool, kind: str | None
) -> None:
    """Return low-level information on containers or images."""
    inspect_all(app, names, fmt, kind, size)


def typed_command(kind: str) -> click.Command:
    """``container inspect`` / ``image inspect``."""

    @click.command("inspect")
    @click.argument("names", nargs=-1, required=True)
    @click.option("-f", "--format", "fmt", help="Format output using a custom template.")
    @click.option("-s", "--size", is_flag=True, help="Display total file sizes.")
    @click.pass_obj
    def cmd(app: App, names: tuple[str, ...], fmt: str | None, size: bool) -> None:
        inspect_all(app, names, fmt, kind, size)

    cmd.help = f"Display detailed information on one or more {kind}s."
    return cmd
