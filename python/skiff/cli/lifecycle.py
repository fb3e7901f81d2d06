"""Container verbs that take names and print them back: stop, restart, kill, rm,
pause, unpause, wait, rename, port, update.

As docker: each container in turn; a failure is one line on stderr and the others
still go on; the exit code is 1 when any failed."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from typing import Any

import click

from skiff.cli.app import App, StatusError
from skiff.errors import NotFound, SkiffError


def for_each(names: Iterable[str], action: Callable[[str], object], echo: bool = True) -> None:
    failed = False
    for name in names:
        try:
            result = action(name)
        except SkiffError as err:
            failed = True
            prefix = "Error response from daemon: " if err.from_daemon else ""
            sys.stderr.write(f"{prefix}{err.message}\n")
            continue
        if echo and result is not False:
            click.echo(name if result is None else result)
    if failed:
        raise StatusError(1)


def _stop_command(verb: str, doc: str) -> click.Command:
    """stop and restart: the same options, the same request but for its verb."""

    @click.command(verb, help=doc)
    @click.argument("containers", nargs=-1, required=True)
    @click.option("-s", "--signal", help="Signal to send to the container.")
    @click.option(
        "-t",
        "--time",
        "--timeout",
        "time",
        type=int,
        help="Seconds to wait before killing the container.",
    )
    @click.pass_obj
    def command(
        app: App, containers: tuple[str, ...], signal: str | None, time: int | None
    ) -> None:
        params = {"t": time, "signal": signal}
        for_each(
            containers,
            lambda c: app.client.request("POST", f"/containers/{c}/{verb}", params=params) and None,
        )

    return command


stop_command = _stop_command("stop", "Stop one or more running containers.")
restart_command = _stop_command("restart", "Restart one or more containers.")


@click.command("kill")
@click.argument("containers", nargs=-1, required=True)
@click.option("-s", "--signal", help="Signal to send to the container.")
@click.pass_obj
def kill_command(app: App, containers: tuple[str, ...], signal: str | None) -> None:
    """Kill one or more running containers."""
    for_each(
        containers,
        lambda c: (
            app.client.request("POST", f"/containers/{c}/kill", params={"signal": signal}) and None
        ),
    )


@click.command("rm")
@click.argument("containers", nargs=-1, required=True)
@click.option(
    "-f", "--force", is_flag=True, help="Force the removal of a running container (uses SIGKILL)."
)
@click.option("-l", "--link", is_flag=True, help="Remove the specified link.")
@click.option(
    "-v", "--volumes", is_flag=True, help="Remove anonymous volumes associated with the container."
)
@click.pass_obj
def rm_command(
    app: App, containers: tuple[str, ...], force: bool, link: bool, volumes: bool
) -> None:
    """Remove one or more containers."""
    params = {"force": force or None, "v": volumes or None, "link": link or None}

    def remove(name: str) -> bool | None:
        try:
            app.client.request("DELETE", f"/containers/{name}", params=params)
        except NotFound:
            if force:
                return False  # docker: rm -f of a missing container is quietly done
            raise
        return None

    for_each((c.strip("/") for c in containers), remove)


@click.command("pause")
@click.argument("containers", nargs=-1, required=True)
@click.pass_obj
def pause_command(app: App, containers: tuple[str, ...]) -> None:
    """Pause all processes within one or more containers."""
    for_each(containers, lambda c: app.client.request("POST", f"/containers/{c}/pause") and None)


@click.command("unpause")
@click.argument("containers", nargs=-1, required=True)
@click.pass_obj
def unpause_command(app: App, containers: tuple[str, ...]) -> None:
    """Unpause all processes within one or more containers."""
    for_each(containers, lambda c: app.client.request("POST", f"/containers/{c}/unpause") and None)


@click.command("wait")
@click.argument("containers", nargs=-1, required=True)
@click.pass_obj
def wait_command(app: App, containers: tuple[str, ...]) -> None:
    """Block until one or more containers stop, then print their exit codes."""

    def wait(name: str) -> str:
        with app.client.stream("POST", f"/containers/{name}/wait", timeout=None) as stream:
            for answer in stream.json_lines():
                error = (answer.get("Error") or {}).get("Message") if answer.get("Error") else None
                if error:
                    raise SkiffError(error)
                return str(answer.get("StatusCode", ""))
        raise SkiffError(f"no answer from the daemon while waiting for {name}")

    for_each(containers, wait)


@click.command("rename")
@click.argument("container")
@click.argument("new_name")
@click.pass_obj
def rename_command(app: App, container: str, new_name: str) -> None:
    """Rename a container."""
    app.client.request("POST", f"/containers/{container}/rename", params={"name": new_name})


@click.command("port")
@click.argument("container")
@click.argument("private_port", required=False)
@click.pass_obj
def port_command(app: App, container: str, private_port: str | None) -> None:
    """List port mappings or a specific mapping for the container."""
    info = app.client.get(f"/containers/{container}/json")
    ports: dict[str, Any] = (info.get("NetworkSettings") or {}).get("Ports") or {}
    lines: list[str] = []
    if private_port:
        port, _, proto = private_port.partition("/")
        key = f"{port}/{proto or 'tcp'}"
        bindings = ports.get(key)
        if not bindings:
            raise StatusError(1, f"Error: No public port '{key}' published for {container}")
        lines = [_host_port(b) for b in bindings]
    else:

        def order(k: str) -> tuple[int, str]:
            p, _, proto = k.partition("/")
            return (int(p) if p.isdigit() else 0, proto)

        for key in sorted(ports, key=order):
            for b in ports[key] or []:
                lines.append(f"{key} -> {_host_port(b)}")
    for line in lines:
        click.echo(line)


def _host_port(binding: dict[str, Any]) -> str:
    ip = binding.get("HostIp") or "0.0.0.0"
    if ":" in ip:
        ip = f"[{ip}]"
    return f"{ip}:{binding.get('HostPort', '')}"


@click.command("update")
@click.argument("containers", nargs=-1, required=True)
@click.option("--cpus", type=float, help="Number of CPUs.")
@click.option("-c", "--cpu-shares", type=int, help="CPU shares (relative weight).")
@click.option("--cpu-period", type=int, help="Limit CPU CFS period.")
@click.option("--cpu-quota", type=int, help="Limit CPU CFS quota.")
@click.option("--cpuset-cpus", help="CPUs in which to allow execution (0-3, 0,1).")
@click.option("-m", "--memory", help="Memory limit.")
@click.option("--memory-reservation", help="Memory soft limit.")
@click.option(
    "--memory-swap", help="Swap limit equal to memory plus swap: -1 to enable unlimited swap."
)
@click.option("--pids-limit", type=int, help="Tune container pids limit (-1 for unlimited).")
@click.option("--restart", help="Restart policy to apply when a container exits.")
@click.pass_obj
def update_command(app: App, /, containers: tuple[str, ...], **o: Any) -> None:
    """Update configuration of one or more containers."""
    from skiff.cli import units
    from skiff.cli.options import parse_restart

    body: dict[str, Any] = {}
    if o["cpus"] is not None:
        body["NanoCpus"] = round(o["cpus"] * 1e9)
    for flag, key in (
        ("cpu_shares", "CpuShares"),
        ("cpu_period", "CpuPeriod"),
        ("cpu_quota", "CpuQuota"),
        ("pids_limit", "PidsLimit"),
    ):
        if o[flag] is not None:
            body[key] = o[flag]
    if o["cpuset_cpus"]:
        body["CpusetCpus"] = o["cpuset_cpus"]
    if o["memory"]:
        body["Memory"] = units.ram_in_bytes(o["memory"])
    if o["memory_reservation"]:
        body["MemoryReservation"] = units.ram_in_bytes(o["memory_reservation"])
    if o["memory_swap"]:
        body["MemorySwap"] = (
            -1 if o["memory_swap"] == "-1" else units.ram_in_bytes(o["memory_swap"])
        )
    if o["restart"]:
        body["RestartPolicy"] = parse_restart(o["restart"])
    if not body:
        raise click.UsageError("you must provide one or more flags when using this command")

    def update(name: str) -> None:
        answer = app.client.post(f"/containers/{name}/update", body) or {}
        for warning in answer.get("Warnings") or []:
            sys.stderr.write(f"WARNING: {warning}\n")

    for_each(containers, update)
