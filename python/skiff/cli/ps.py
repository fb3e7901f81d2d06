"""``skiff ps``: docker's container listing, columns and all.

Kept light: it is the command people time. It runs without click
(:mod:`skiff.cli.fastpath`) and imports only the client, the formatter and the
size/time wording; the click command (``command``) is built from the same flag table
when click is in use."""

from __future__ import annotations

import sys

from skiff.cli.app import App
from skiff.cli.common import ellipsis, filters_arg, short_id
from skiff.cli.fastpath import Opt, parse
from skiff.cli.formatter import Row, render

TYPE_CHECKING = False  # typing itself costs the CLI's start ~10 ms
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

DEFAULT = (
    "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}"
)


class ContainerRow(Row):
    HEADERS = {
        "Command": "COMMAND",
        "CreatedAt": "CREATED AT",
        "ID": "CONTAINER ID",
        "Image": "IMAGE",
        "Labels": "LABELS",
        "LocalVolumes": "LOCAL VOLUMES",
        "Mounts": "MOUNTS",
        "Names": "NAMES",
        "Networks": "NETWORKS",
        "Platform": "PLATFORM",
        "Ports": "PORTS",
        "RunningFor": "CREATED",
        "Size": "SIZE",
        "State": "STATE",
        "Status": "STATUS",
    }

    def __init__(self, c: dict[str, Any], trunc: bool) -> None:
        self.c = c
        self.trunc = trunc

    @property
    def ID(self) -> str:
        ident = str(self.c.get("Id", ""))
        return short_id(ident) if self.trunc else ident

    @property
    def Names(self) -> str:
        names = [n[1:] if n.startswith("/") else n for n in self.c.get("Names") or []]
        if self.trunc:
            names = [n for n in names if "/" not in n][:1] or names[:1]
        return ",".join(names)

    @property
    def Image(self) -> str:
        image = str(self.c.get("Image") or "")
        if not image:
            return "<no image>"
        if self.trunc:
            if image.startswith("sha256:") or short_id(
                str(self.c.get("ImageID") or "")
            ) == short_id(image):
                return short_id(image)
            if "@" in image:
                image = image.partition("@")[0]
        return image

    @property
    def Command(self) -> str:
        from skiff.client.fastjson import quote

        command = str(self.c.get("Command") or "")
        if self.trunc:
            command = ellipsis(command, 20)
        return quote(command)

    @property
    def CreatedAt(self) -> str:
        from skiff.cli.images import go_time

        return go_time(float(self.c.get("Created") or 0))

    @property
    def RunningFor(self) -> str:
        from skiff.cli import units

        return units.ago(float(self.c.get("Created") or 0))

    @property
    def Platform(self) -> dict[str, Any] | None:
        descriptor = self.c.get("ImageManifestDescriptor") or {}
        platform: dict[str, Any] | None = descriptor.get("platform")
        return platform

    @property
    def Ports(self) -> str:
        return displayable_ports(self.c.get("Ports") or [])

    @property
    def State(self) -> str:
        return str(self.c.get("State") or "")

    @property
    def Status(self) -> str:
        return str(self.c.get("Status") or "")

    @property
    def Size(self) -> str:
        from skiff.cli import units

        rw = units.size(self.c.get("SizeRw") or 0)
        root = self.c.get("SizeRootFs") or 0
        return f"{rw} (virtual {units.size(root)})" if root > 0 else rw

    @property
    def Labels(self) -> str:
        labels = self.c.get("Labels") or {}
        return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))

    def Label(self, name: str) -> str:
        return str((self.c.get("Labels") or {}).get(name, ""))

    @property
    def Mounts(self) -> str:
        names = []
        for m in self.c.get("Mounts") or []:
            name = m.get("Name") or m.get("Source") or ""
            names.append(ellipsis(name, 15) if self.trunc else name)
        return ",".join(names)

    @property
    def LocalVolumes(self) -> str:
        return str(sum(1 for m in self.c.get("Mounts") or [] if m.get("Driver") == "local"))

    @property
    def Networks(self) -> str:
        nets = ((self.c.get("NetworkSettings") or {}).get("Networks")) or {}
        return ",".join(sorted(nets))


def displayable_ports(ports: list[dict[str, Any]]) -> str:
    """docker's DisplayablePorts: ``0.0.0.0:8080->80/tcp, 443/tcp``, ranges grouped."""

    def key(p: dict[str, Any]) -> tuple[Any, ...]:
        return (p.get("PrivatePort", 0), p.get("Type", ""), p.get("IP", ""), p.get("PublicPort", 0))

    groups: dict[str, list[int]] = {}
    order: list[str] = []
    result: list[str] = []
    mappings: list[str] = []
    for p in sorted(ports, key=key):
        current = int(p.get("PrivatePort") or 0)
        proto = str(p.get("Type") or "tcp")
        group_key = proto
        ip = str(p.get("IP") or "")
        if ip:
            public = int(p.get("PublicPort") or 0)
            if public != current:
                # IPv6 in brackets (only IPv6 has colons; ipaddress costs ps ~3 ms)
                host = f"[{ip}]" if ":" in ip else ip
                mappings.append(f"{host}:{public}->{current}/{proto}")
                continue
            group_key = f"{ip}/{proto}"
        group = groups.get(group_key)
        if group is None:
            groups[group_key] = [current, current]
            order.append(group_key)
        elif current == group[1] + 1:
            group[1] = current
        else:
            result.append(_form_group(group_key, *group))
            groups[group_key] = [current, current]
    result += [_form_group(k, *groups[k]) for k in order]
    return ", ".join(result + mappings)


def _form_group(key: str, first: int, last: int) -> str:
    ip, _, proto = key.rpartition("/")
    group = str(first) if first == last else f"{first}-{last}"
    if ip:
        group = f"{ip}:{group}->{group}"
    return f"{group}/{proto}"


OPTIONS = [
    Opt("-a", "--all", dest="all_", kind="flag",
        help="Show all containers (default shows just running)."),
    Opt("-f", "--filter", dest="filters", kind="multi",
        help="Filter output based on conditions provided."),
    Opt("--format", dest="fmt",
        help="Format output using a template ('table', 'table TEMPLATE', 'json', or TEMPLATE)."),
    Opt("-n", "--last", default=-1, convert=int,
        help="Show n last created containers (includes all states)."),
    Opt("-l", "--latest", kind="flag",
        help="Show the latest created container (includes all states)."),
    Opt("--no-trunc", kind="flag", help="Don't truncate output."),
    Opt("-q", "--quiet", kind="flag", help="Only display container IDs."),
    Opt("-s", "--size", kind="flag", help="Display total file sizes."),
]  # fmt: skip


def ps(
    app: App,
    all_: bool,
    filters: tuple[str, ...],
    fmt: str | None,
    last: int,
    latest: bool,
    no_trunc: bool,
    quiet: bool,
    size: bool,
) -> None:
    """List containers."""
    limit = 1 if latest and last == -1 else last
    want_size = size or bool(fmt and ".Size" in fmt)
    params: dict[str, Any] = {
        "all": True if all_ else None,
        "limit": limit if limit > 0 else None,
        "size": True if want_size and not quiet else None,
        "filters": filters_arg(filters),
    }
    containers = app.client.request("GET", "/containers/json", params=params).json() or []
    rows = [ContainerRow(c, not no_trunc) for c in containers]
    default = DEFAULT + ("\t{{.Size}}" if size else "")
    sys.stdout.write(
        render(rows, fmt, default, ContainerRow.HEADERS, quiet_field="ID", quiet=quiet)
    )


def fast_args(args: list[str]) -> Callable[[App], None]:
    """``ps`` parsed without click (raises GiveUp when click must parse it)."""
    values, _ = parse(OPTIONS, args, 0, rest=False)
    return lambda app: ps(app, **values)


def __getattr__(name: str) -> Any:
    if name != "command":
        raise AttributeError(name)
    import click

    def callback(app: App, **values: Any) -> None:
        ps(app, **values)

    f: Any = callback
    for opt in reversed(OPTIONS):
        f = opt.click_option()(f)
    cmd = click.command("ps", help=ps.__doc__)(click.pass_obj(f))
    globals()["command"] = cmd
    return cmd
