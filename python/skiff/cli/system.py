"""``skiff system {info, df, prune, events}``, and ``info`` / ``events`` at the top."""

from __future__ import annotations

import sys
import time
from typing import Any

import click

from skiff.cli.app import App
from skiff.cli.common import filters_arg
from skiff.cli.formatter import Row, render, render_one

# ---------------------------------------------------------------------------- info


def _info_lines(app: App, info: dict[str, Any]) -> list[str]:
    from skiff.cli import contexts
    from skiff.cli.stats import bytes_size
    from skiff.version import __version__

    context = app.context_flag or contexts.current_name()
    lines = [
        "Client:",
        f" Version:    {__version__}",
        f" Context:    {context}",
        f" Debug Mode: {'true' if app.debug else 'false'}",
        "",
        "Server:",
        f" Containers: {info.get('Containers', 0)}",
        f"  Running: {info.get('ContainersRunning', 0)}",
        f"  Paused: {info.get('ContainersPaused', 0)}",
        f"  Stopped: {info.get('ContainersStopped', 0)}",
        f" Images: {info.get('Images', 0)}",
        f" Server Version: {info.get('ServerVersion', '')}",
        f" Storage Driver: {info.get('Driver', '')}",
    ]
    lines += [f"  {k}: {v}" for k, v in info.get("DriverStatus") or []]
    lines += [
        f" Logging Driver: {info.get('LoggingDriver', '')}",
        f" Cgroup Driver: {info.get('CgroupDriver', '')}",
        f" Cgroup Version: {info.get('CgroupVersion', '')}",
        " Plugins:",
    ]
    for kind, names in (info.get("Plugins") or {}).items():
        if names:
            lines.append(f"  {kind}: {' '.join(names)}")
    runtimes = " ".join(sorted(info.get("Runtimes") or {}))
    lines += [
        f" Runtimes: {runtimes}",
        f" Default Runtime: {info.get('DefaultRuntime', '')}",
        f" Init Binary: {info.get('InitBinary', '')}",
        " Security Options:",
    ]
    for opt in info.get("SecurityOptions") or []:
        fields = dict(f.split("=", 1) for f in opt.split(",") if "=" in f)
        lines.append(f"  {fields.get('name', opt)}")
        lines += [f"   {k.title()}: {v}" for k, v in fields.items() if k != "name"]
    lines += [
        f" Kernel Version: {info.get('KernelVersion', '')}",
        f" Operating System: {info.get('OperatingSystem', '')}",
        f" OSType: {info.get('OSType', '')}",
        f" Architecture: {info.get('Architecture', '')}",
        f" CPUs: {info.get('NCPU', 0)}",
        f" Total Memory: {bytes_size(info.get('MemTotal') or 0)}",
        f" Name: {info.get('Name', '')}",
        f" ID: {info.get('ID', '')}",
        f" Docker Root Dir: {info.get('DockerRootDir', '')}",
        f" Debug Mode: {'true' if info.get('Debug') else 'false'}",
        f" Experimental: {'true' if info.get('ExperimentalBuild') else 'false'}",
        f" Live Restore Enabled: {'true' if info.get('LiveRestoreEnabled') else 'false'}",
    ]
    mirrors = (info.get("RegistryConfig") or {}).get("Mirrors") or []
    if mirrors:
        lines.append(" Registry Mirrors:")
        lines += [f"  {m}" for m in mirrors]
    lines += [f"WARNING: {w}" for w in info.get("Warnings") or []]
    return lines


@click.command("info")
@click.option(
    "-f", "--format", "fmt", help="Format output using a custom template ('json' or a Go template)."
)
@click.pass_obj
def info_command(app: App, fmt: str | None) -> None:
    """Display system-wide information."""
    info = app.client.get("/info")
    if fmt:
        click.echo(render_one(info, fmt))
        return
    click.echo("\n".join(_info_lines(app, info)))


# ---------------------------------------------------------------------------- df


class DfRow(Row):
    HEADERS = {
        "Type": "TYPE",
        "TotalCount": "TOTAL",
        "Active": "ACTIVE",
        "Size": "SIZE",
        "Reclaimable": "RECLAIMABLE",
    }

    def __init__(self, kind: str, total: int, active: int, size: int, reclaimable: int) -> None:
        from skiff.cli import units

        self.Type = kind
        self.TotalCount = str(total)
        self.Active = str(active)
        self.Size = units.size4(size)
        pct = f" ({reclaimable * 100 // size}%)" if size > 0 else ""
        self.Reclaimable = units.size4(reclaimable) + pct


def df_rows(df: dict[str, Any]) -> list[DfRow]:
    images = df.get("Images") or []
    layers = int(df.get("LayersSize") or 0)
    used = sum(
        int(i.get("Size") or 0) - max(0, int(i.get("SharedSize") or 0))
        for i in images
        if (i.get("Containers") or 0) > 0
    )
    containers = df.get("Containers") or []
    running = [c for c in containers if c.get("State") in ("running", "paused")]
    csize = sum(int(c.get("SizeRw") or 0) for c in containers)
    creclaim = sum(int(c.get("SizeRw") or 0) for c in containers if c not in running)
    volumes = df.get("Volumes") or []
    vsize = sum(max(0, int((v.get("UsageData") or {}).get("Size") or 0)) for v in volumes)
    vactive = sum(1 for v in volumes if ((v.get("UsageData") or {}).get("RefCount") or 0) > 0)
    vreclaim = sum(
        max(0, int((v.get("UsageData") or {}).get("Size") or 0))
        for v in volumes
        if not ((v.get("UsageData") or {}).get("RefCount") or 0)
    )
    cache = df.get("BuildCache") or []
    bsize = sum(int(b.get("Size") or 0) for b in cache)
    bactive = sum(1 for b in cache if b.get("InUse"))
    breclaim = sum(
        int(b.get("Size") or 0) for b in cache if not b.get("InUse") and not b.get("Shared")
    )
    return [
        DfRow(
            "Images",
            len(images),
            sum(1 for i in images if (i.get("Containers") or 0) > 0),
            layers,
            max(0, layers - used),
        ),
        DfRow("Containers", len(containers), len(running), csize, creclaim),
        DfRow("Local Volumes", len(volumes), vactive, vsize, vreclaim),
        DfRow("Build Cache", len(cache), bactive, bsize, breclaim),
    ]


@click.command("df")
@click.option("--format", "fmt", help="Format output using a custom template.")
@click.option("-v", "--verbose", is_flag=True, help="Show detailed information on space usage.")
@click.pass_obj
def df_command(app: App, fmt: str | None, verbose: bool) -> None:
    """Show docker disk usage."""
    df = app.client.get("/system/df")
    if verbose and not fmt:
        _df_verbose(df)
        return
    default = "table {{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t{{.Reclaimable}}"
    sys.stdout.write(render(df_rows(df), fmt, default, DfRow.HEADERS))


def _df_verbose(df: dict[str, Any]) -> None:
    from skiff.cli import units
    from skiff.cli.formatter import tabwrite
    from skiff.cli.images import image_rows
    from skiff.cli.ps import ContainerRow

    out = sys.stdout
    out.write("Images space usage:\n\n")
    lines = ["REPOSITORY\tTAG\tIMAGE ID\tCREATED\tSIZE\tSHARED SIZE\tUNIQUE SIZE\tCONTAINERS"]
    for r in image_rows(df.get("Images") or [], False, True):
        lines.append(
            "\t".join(
                [
                    r.Repository,
                    r.Tag,
                    r.ID,
                    r.CreatedSince,
                    r.Size,
                    r.SharedSize,
                    r.UniqueSize,
                    r.Containers,
                ]
            )
        )
    out.write(tabwrite(lines) + "\nContainers space usage:\n\n")
    lines = ["CONTAINER ID\tIMAGE\tCOMMAND\tLOCAL VOLUMES\tSIZE\tCREATED\tSTATUS\tNAMES"]
    for c in df.get("Containers") or []:
        row = ContainerRow(c, True)
        lines.append(
            "\t".join(
                [
                    row.ID,
                    row.Image,
                    row.Command,
                    row.LocalVolumes,
                    units.size(c.get("SizeRw") or 0),
                    row.RunningFor,
                    row.Status,
                    row.Names,
                ]
            )
        )
    out.write(tabwrite(lines) + "\nLocal Volumes space usage:\n\n")
    lines = ["VOLUME NAME\tLINKS\tSIZE"]
    for v in df.get("Volumes") or []:
        usage = v.get("UsageData") or {}
        size = units.size(max(0, usage.get("Size") or 0))
        lines.append(f"{v.get('Name', '')}\t{usage.get('RefCount', 0)}\t{size}")
    out.write(
        tabwrite(lines)
        + "\nBuild cache usage: "
        + units.size(sum(int(b.get("Size") or 0) for b in df.get("BuildCache") or []))
        + "\n"
    )


# ---------------------------------------------------------------------------- prune


@click.command("prune")
@click.option(
    "-a", "--all", "all_", is_flag=True, help="Remove all unused images not just dangling ones."
)
@click.option(
    "--filter", "filters", multiple=True, help="Provide filter values (e.g. 'label=<key>=<value>')."
)
@click.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation.")
@click.option("--volumes", is_flag=True, help="Prune anonymous volumes.")
@click.pass_obj
def prune_command(
    app: App, all_: bool, filters: tuple[str, ...], force: bool, volumes: bool
) -> None:
    """Remove unused data."""
    from skiff.cli import units
    from skiff.errors import NotFound, NotImplementedYet

    if not force:
        items = ["all stopped containers", "all networks not used by at least one container"]
        if volumes:
            items.append("all anonymous volumes not used by at least one container")
        items.append(
            "all images without at least one container associated to them"
            if all_
            else "all dangling images"
        )
        items.append("unused build cache" if not all_ else "all build cache")
        click.echo("WARNING! This will remove:")
        for item in items:
            click.echo(f"  - {item}")
        if not click.confirm("\nAre you sure you want to continue?", default=False, err=False):
            return
    filt = filters_arg(filters)
    reclaimed = 0
    got = app.client.post("/containers/prune", filters=filt) or {}
    reclaimed += int(got.get("SpaceReclaimed") or 0)
    if got.get("ContainersDeleted"):
        click.echo("Deleted Containers:")
        for c in got["ContainersDeleted"]:
            click.echo(c)
        click.echo("")

    def optional(path: str, **params: Any) -> dict[str, Any]:
        try:
            return app.client.post(path, **params) or {}
        except (NotFound, NotImplementedYet):
            return {}  # the daemon has no such resource yet (networks, volumes, build)

    nets = optional("/networks/prune", filters=filt)
    if nets.get("NetworksDeleted"):
        click.echo("Deleted Networks:")
        for n in nets["NetworksDeleted"]:
            click.echo(n)
        click.echo("")
    if volumes:
        vols = optional("/volumes/prune", filters=filt)
        reclaimed += int(vols.get("SpaceReclaimed") or 0)
        if vols.get("VolumesDeleted"):
            click.echo("Deleted Volumes:")
            for v in vols["VolumesDeleted"]:
                click.echo(v)
            click.echo("")
    from skiff.cli.images import image_prune

    imgs = image_prune(app, all_, filters)
    reclaimed += int(imgs.get("SpaceReclaimed") or 0)
    if imgs.get("ImagesDeleted"):
        click.echo("Deleted Images:")
        for item in imgs["ImagesDeleted"]:
            for key in ("Untagged", "Deleted"):
                if item.get(key):
                    click.echo(f"{key.lower()}: {item[key]}")
        click.echo("")
    cache = optional("/build/prune", all=all_ or None, filters=filt)
    reclaimed += int(cache.get("SpaceReclaimed") or 0)
    click.echo(f"Total reclaimed space: {units.size(reclaimed)}")


# ---------------------------------------------------------------------------- events


def event_line(e: dict[str, Any]) -> str:
    """docker's plain event line: time (RFC 3339, ns), type, action, actor (attributes)."""
    nanos = int(e.get("timeNano") or 0) or int(e.get("time") or 0) * 1_000_000_000
    t = time.localtime(nanos // 1_000_000_000)
    offset = time.strftime("%z", t)
    zone = "Z" if offset == "+0000" else f"{offset[:3]}:{offset[3:]}"
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", t) + f".{nanos % 1_000_000_000:09d}{zone}"
    actor = e.get("Actor") or {}
    line = f"{stamp} {e.get('Type', '')} {e.get('Action', '')} {actor.get('ID', '')}"
    attrs = actor.get("Attributes") or {}
    if attrs:
        line += " (" + ", ".join(f"{k}={attrs[k]}" for k in sorted(attrs)) + ")"
    return line


@click.command("events")
@click.option(
    "-f", "--filter", "filters", multiple=True, help="Filter output based on conditions provided."
)
@click.option(
    "--format", "fmt", help="Format output using a custom template ('json' or a Go template)."
)
@click.option("--since", help="Show all events created since timestamp.")
@click.option("--until", help="Stream events until this timestamp.")
@click.pass_obj
def events_command(
    app: App, filters: tuple[str, ...], fmt: str | None, since: str | None, until: str | None
) -> None:
    """Get real time events from the server."""
    from skiff.cli import units

    params = {
        "since": units.timestamp_arg(since) if since else None,
        "until": units.timestamp_arg(until) if until else None,
        "filters": filters_arg(filters),
    }
    with app.client.stream("GET", "/events", params=params, timeout=None) as stream:
        for event in stream.json_lines():
            sys.stdout.write((render_one(event, fmt) if fmt else event_line(event)) + "\n")
            sys.stdout.flush()


@click.group("system", context_settings={"help_option_names": ["-h", "--help"]})
def system_group() -> None:
    """Manage Skiff."""


system_group.add_command(info_command)
system_group.add_command(df_command)
system_group.add_command(prune_command)
system_group.add_command(events_command)
