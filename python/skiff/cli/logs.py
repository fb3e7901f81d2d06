"""``skiff logs``: a container's log, as it was written (framed without a tty)."""

from __future__ import annotations

import click

from skiff.cli.app import App


@click.command("logs")
@click.argument("container")
@click.option("--details", is_flag=True, help="Show extra details provided to logs.")
@click.option("-f", "--follow", is_flag=True, help="Follow log output.")
@click.option(
    "--since", help="Show logs since timestamp (e.g. 2013-01-02T13:23:37Z) or relative (e.g. 42m)."
)
@click.option(
    "-n",
    "--tail",
    default="all",
    show_default=True,
    help="Number of lines to show from the end of the logs.",
)
@click.option("-t", "--timestamps", is_flag=True, help="Show timestamps.")
@click.option("--until", help="Show logs before a timestamp or relative (e.g. 42m).")
@click.pass_obj
def command(
    app: App,
    container: str,
    details: bool,
    follow: bool,
    since: str | None,
    tail: str,
    timestamps: bool,
    until: str | None,
) -> None:
    """Fetch the logs of a container."""
    from skiff.cli import streams, units

    info = app.client.get(f"/containers/{container}/json")
    tty = bool((info.get("Config") or {}).get("Tty"))
    params = {
        "stdout": True,
        "stderr": True,
        "follow": follow or None,
        "since": units.timestamp_arg(since) if since else None,
        "until": units.timestamp_arg(until) if until else None,
        "timestamps": timestamps or None,
        "details": details or None,
        "tail": tail,
    }
    with app.client.stream(
        "GET", f"/containers/{info['Id']}/logs", params=params, timeout=None
    ) as s:
        multiplexed = s.headers.get("content-type") == "application/vnd.docker.multiplexed-stream"
        streams.copy_output(s.read1, multiplexed or (not tty and "content-type" not in s.headers))
