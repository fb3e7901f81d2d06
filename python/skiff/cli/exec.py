"""``skiff exec``: run a command in a running container (create, start hijacked,
resize with a tty, then the exit code from the exec's inspect)."""

from __future__ import annotations

import os
from typing import Any

import click

from skiff.cli.app import App, StatusError

SETTINGS = {"allow_interspersed_args": False}


@click.command("exec", context_settings=SETTINGS)
@click.option("-d", "--detach", is_flag=True, help="Detached mode: run command in the background.")
@click.option("--detach-keys", help="Override the key sequence for detaching a container.")
@click.option("-e", "--env", multiple=True, help="Set environment variables.")
@click.option(
    "--env-file", multiple=True, type=click.Path(), help="Read in a file of environment variables."
)
@click.option("-i", "--interactive", is_flag=True, help="Keep STDIN open even if not attached.")
@click.option("--privileged", is_flag=True, help="Give extended privileges to the command.")
@click.option("-t", "--tty", is_flag=True, help="Allocate a pseudo-TTY.")
@click.option("-u", "--user", help="Username or UID (format: <name|uid>[:<group|gid>]).")
@click.option("-w", "--workdir", help="Working directory inside the container.")
@click.argument("container")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@click.pass_obj
def command(
    app: App,
    detach: bool,
    detach_keys: str | None,
    env: tuple[str, ...],
    env_file: tuple[str, ...],
    interactive: bool,
    privileged: bool,
    tty: bool,
    user: str | None,
    workdir: str | None,
    container: str,
    command: tuple[str, ...],
) -> None:
    """Execute a command in a running container."""
    from skiff.cli import streams
    from skiff.cli.options import parse_env
    from skiff.cli.run import Session
    from skiff.errors import InvalidArgument

    if tty and interactive and not detach and not os.isatty(0):
        raise InvalidArgument("the input device is not a TTY")
    keys = streams.parse_detach_keys(detach_keys)
    size = streams.terminal_size(1) if tty else None
    body: dict[str, Any] = {
        "User": user or "",
        "Privileged": privileged,
        "Tty": tty,
        "AttachStdin": interactive and not detach,
        "AttachStdout": not detach,
        "AttachStderr": not detach,
        "Env": parse_env(env_file, env) or None,
        "WorkingDir": workdir or "",
        "Cmd": list(command),
    }
    if detach_keys:
        body["DetachKeys"] = detach_keys
    if size:
        body["ConsoleSize"] = list(size)
    exec_id = app.client.post(f"/containers/{container}/exec", body)["Id"]
    start: dict[str, Any] = {"Detach": detach, "Tty": tty}
    if size:
        start["ConsoleSize"] = list(size)
    if detach:
        app.client.post(f"/exec/{exec_id}/start", start)
        return
    hijacked = app.client.hijack(f"/exec/{exec_id}/start", start)
    session = Session(app, exec_id, hijacked, tty, keys, resize_path=f"/exec/{exec_id}/resize")
    session.run(stdin=interactive)
    if session.detached:
        return
    code = int(app.client.get(f"/exec/{exec_id}/json").get("ExitCode") or 0)
    if code != 0:
        raise StatusError(code)
