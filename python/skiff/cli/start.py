"""``skiff start``: start stopped containers; with ``-a``/``-i``, attached like run."""

from __future__ import annotations

import click

from skiff.cli.app import App


@click.command("start")
@click.argument("containers", nargs=-1, required=True)
@click.option("-a", "--attach", is_flag=True, help="Attach STDOUT/STDERR and forward signals.")
@click.option("--detach-keys", help="Override the key sequence for detaching a container.")
@click.option("-i", "--interactive", is_flag=True, help="Attach container's STDIN.")
@click.pass_obj
def command(
    app: App, containers: tuple[str, ...], attach: bool, detach_keys: str | None, interactive: bool
) -> None:
    """Start one or more stopped containers."""
    if not (attach or interactive):
        from skiff.cli.lifecycle import for_each

        for_each(
            containers, lambda c: app.client.request("POST", f"/containers/{c}/start") and None
        )
        return
    if len(containers) > 1:
        raise click.UsageError("you cannot start and attach multiple containers at once")
    from skiff.cli.run import _start, attach_session, run_attached

    name = containers[0]
    info = app.client.get(f"/containers/{name}/json")
    session, stdin = attach_session(app, info, interactive, detach_keys)
    cid = session.target
    auto_remove = bool((info.get("HostConfig") or {}).get("AutoRemove"))
    waiting = app.client.stream(
        "POST",
        f"/containers/{cid}/wait",
        params={"condition": "removed" if auto_remove else "next-exit"},
        timeout=None,
    )
    _start(app, cid, session)
    run_attached(session, waiting, stdin, True)
