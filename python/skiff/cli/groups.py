"""``skiff container …`` and ``skiff image …``: docker's management commands, the same
command modules under the names docker gives them there."""

from __future__ import annotations

import click

from skiff.cli.root import CONTEXT_SETTINGS, LazyGroup

CONTAINER = {
    "attach": "skiff.cli.attach",
    "commit": "skiff.cli.images:commit_command",
    "cp": "skiff.cli.filesystem:cp_command",
    "create": "skiff.cli.run:create_command",
    "diff": "skiff.cli.filesystem:diff_command",
    "exec": "skiff.cli.exec",
    "export": "skiff.cli.filesystem:export_command",
    "inspect": "skiff.cli.groups:container_inspect",
    "kill": "skiff.cli.lifecycle:kill_command",
    "logs": "skiff.cli.logs",
    "ls": "skiff.cli.ps",
    "pause": "skiff.cli.lifecycle:pause_command",
    "port": "skiff.cli.lifecycle:port_command",
    "prune": "skiff.cli.groups:container_prune",
    "rename": "skiff.cli.lifecycle:rename_command",
    "restart": "skiff.cli.lifecycle:restart_command",
    "rm": "skiff.cli.lifecycle:rm_command",
    "run": "skiff.cli.run:run_command",
    "start": "skiff.cli.start",
    "stats": "skiff.cli.stats",
    "stop": "skiff.cli.lifecycle:stop_command",
    "top": "skiff.cli.stats:top_command",
    "unpause": "skiff.cli.lifecycle:unpause_command",
    "update": "skiff.cli.lifecycle:update_command",
    "wait": "skiff.cli.lifecycle:wait_command",
}

IMAGE = {
    "history": "skiff.cli.images:history_command",
    "import": "skiff.cli.images:import_command",
    "inspect": "skiff.cli.groups:image_inspect",
    "load": "skiff.cli.images:load_command",
    "ls": "skiff.cli.images:images_command",
    "prune": "skiff.cli.groups:image_prune",
    "pull": "skiff.cli.images:pull_command",
    "push": "skiff.cli.images:push_command",
    "rm": "skiff.cli.images:rmi_command",
    "save": "skiff.cli.images:save_command",
    "tag": "skiff.cli.images:tag_command",
}


@click.group(
    "container", cls=LazyGroup, commands_table=CONTAINER, context_settings=CONTEXT_SETTINGS
)
def container() -> None:
    """Manage containers."""


@click.group("image", cls=LazyGroup, commands_table=IMAGE, context_settings=CONTEXT_SETTINGS)
def image() -> None:
    """Manage images."""


def _inspect(kind: str) -> click.Command:
    from skiff.cli.inspect import typed_command

    return typed_command(kind)


container_inspect = _inspect("container")
image_inspect = _inspect("image")


@click.command("prune")
@click.option("--filter", "filters", multiple=True, help="Provide filter values.")
@click.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation.")
@click.pass_obj
def container_prune(app, filters: tuple[str, ...], force: bool) -> None:  # type: ignore[no-untyped-def]
    """Remove all stopped containers."""
    from skiff.cli import units
    from skiff.cli.common import filters_arg

    if not force and not click.confirm(
        "WARNING! This will remove all stopped containers.\nAre you sure you want to continue?"
    ):
        return
    got = app.client.post("/containers/prune", filters=filters_arg(filters)) or {}
    if got.get("ContainersDeleted"):
        click.echo("Deleted Containers:")
        for c in got["ContainersDeleted"]:
            click.echo(c)
        click.echo("")
    click.echo(f"Total reclaimed space: {units.size(got.get('SpaceReclaimed') or 0)}")


@click.command("prune")
@click.option(
    "-a", "--all", "all_", is_flag=True, help="Remove all unused images, not just dangling ones."
)
@click.option("--filter", "filters", multiple=True, help="Provide filter values.")
@click.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation.")
@click.pass_obj
def image_prune(app, all_: bool, filters: tuple[str, ...], force: bool) -> None:  # type: ignore[no-untyped-def]
    """Remove unused images."""
    from skiff.cli import units
    from skiff.cli.images import image_prune as prune

    what = (
        "all images without at least one container associated to them"
        if all_
        else "all dangling images"
    )
    if not force and not click.confirm(
        f"WARNING! This will remove {what}.\nAre you sure you want to continue?"
    ):
        return
    got = prune(app, all_, filters)
    if got.get("ImagesDeleted"):
        click.echo("Deleted Images:")
        for item in got["ImagesDeleted"]:
            for key in ("Untagged", "Deleted"):
                if item.get(key):
                    click.echo(f"{key.lower()}: {item[key]}")
        click.echo("")
    click.echo(f"Total reclaimed space: {units.size(got.get('SpaceReclaimed') or 0)}")
