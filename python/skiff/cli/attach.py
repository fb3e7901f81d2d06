"""``skiff attach``: our stdio to a running container's, until it ends or we detach."""

from __future__ import annotations

import click

from skiff.cli.app import App, StatusError
from skiff.cli.common import go_bool_option


@click.command("attach")
@click.argument("container")
@click.option("--detach-keys", help="Override the key sequence for detaching a container.")
@click.option("--no-stdin", is_flag=True, help="Do not attach STDIN.")
@go_bool_option("--sig-proxy", default=True, help="Proxy received signals to the process.")
@click.pass_obj
def command(
    app: App, container: str, detach_keys: str | None, no_stdin: bool, sig_proxy: bool
) -> None:
    """Attach local standard input, output, and error streams to a running container."""
    from skiff.cli.run import attach_session, run_attached

    waiting = app.client.stream("POST", f"/containers/{container}/wait", timeout=None)
    info = app.client.get(f"/containers/{container}/json")
    state = info.get("State") or {}
    if not state.get("Running"):
        waiting.close()
        raise StatusError(1, "You cannot attach to a stopped container, start it first")
    if state.get("Paused"):
        waiting.close()
        raise StatusError(1, "You cannot attach to a paused container, unpause it first")
    session, stdin = attach_session(app, info, not no_stdin, detach_keys)
    run_attached(session, waiting, stdin, sig_proxy)
