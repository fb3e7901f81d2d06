"""``skiff context {ls, create, use, rm, inspect, show}``: named daemons, kept where the
docker CLI keeps them (see :mod:`skiff.cli.contexts`)."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from skiff.cli import contexts
from skiff.cli.app import App
from skiff.cli.formatter import Row, render
from skiff.errors import InvalidArgument


class ContextRow(Row):
    HEADERS = {
        "Name": "NAME",
        "Description": "DESCRIPTION",
        "DockerEndpoint": "DOCKER ENDPOINT",
        "Current": "CURRENT",
        "Error": "ERROR",
    }

    def __init__(self, ctx: contexts.Context, current: bool) -> None:
        self.Name = ctx.name + (" *" if current else "")
        self.Current = current
        self.Description = ctx.description
        self.DockerEndpoint = ctx.host
        self.Error = ""

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        out["Name"] = self.Name.removesuffix(" *")
        return out


@click.group("context", context_settings={"help_option_names": ["-h", "--help"]})
def command() -> None:
    """Manage contexts."""


@command.command("ls")
@click.option("--format", "fmt", help="Format output using a custom template.")
@click.option("-q", "--quiet", is_flag=True, help="Only show context names.")
@click.pass_obj
def ls(app: App, fmt: str | None, quiet: bool) -> None:
    """List contexts."""
    current = app.context_flag or contexts.current_name()
    rows = [ContextRow(c, c.name == current) for c in contexts.all_contexts()]
    if quiet:
        for c in contexts.all_contexts():
            click.echo(c.name)
        return
    default = "table {{.Name}}\t{{.Description}}\t{{.DockerEndpoint}}\t{{.Error}}"
    sys.stdout.write(render(rows, fmt, default, ContextRow.HEADERS))


@command.command("create")
@click.argument("name")
@click.option("--description", default="", help="Description of the context.")
@click.option(
    "--docker",
    "docker_opts",
    metavar="host=ADDR",
    help="Set the docker endpoint (host=unix:///path or tcp://host:port).",
)
@click.option("--from", "from_", metavar="CONTEXT", help="Create context from a named context.")
def create(name: str, description: str, docker_opts: str | None, from_: str | None) -> None:
    """Create a context."""
    host = ""
    if from_:
        host = contexts.load(from_).host
    if docker_opts:
        for item in docker_opts.split(","):
            key, _, value = item.partition("=")
            if key.strip() == "host":
                host = value.strip()
            elif key.strip() not in ("skip-tls-verify", "ca", "cert", "key"):
                raise InvalidArgument(f"unrecognized config key {key!r} in --docker")
    if not host:
        host = contexts.default_context().host
    contexts.create(name, host, description)
    click.echo(name)
    click.echo(f'Successfully created context "{name}"', err=True)


@command.command("use")
@click.argument("name")
def use(name: str) -> None:
    """Set the current context."""
    contexts.use(name)
    click.echo(name)
    click.echo(f'Current context is now "{name}"', err=True)


@command.command("rm")
@click.argument("names", nargs=-1, required=True)
@click.option("-f", "--force", is_flag=True, help="Force the removal of a context in use.")
def rm(names: tuple[str, ...], force: bool) -> None:
    """Remove one or more contexts."""
    for name in names:
        contexts.remove(name, force)
        click.echo(name)


@command.command("inspect")
@click.argument("names", nargs=-1)
@click.option("-f", "--format", "fmt", help="Format output using a custom template.")
@click.pass_obj
def inspect(app: App, names: tuple[str, ...], fmt: str | None) -> None:
    """Display detailed information on one or more contexts."""
    from skiff.cli.formatter import render_one

    wanted = names or (app.context_flag or contexts.current_name(),)
    found = []
    for name in wanted:
        ctx = contexts.load(name)
        meta = ctx.to_meta()
        meta["TLSMaterial"] = {}
        meta["Storage"] = {
            "MetadataPath": "<IN MEMORY>"
            if name == contexts.DEFAULT
            else str(contexts._meta_dir(name)),
            "TLSPath": "<IN MEMORY>",
        }
        found.append(meta)
    if fmt:
        for meta in found:
            click.echo(render_one(meta, fmt))
        return
    click.echo(json.dumps(found, indent=4))


@command.command("show")
@click.pass_obj
def show(app: App) -> None:
    """Print the name of the current context."""
    click.echo(app.context_flag or contexts.current_name())
