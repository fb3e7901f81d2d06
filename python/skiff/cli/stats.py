"""``skiff stats`` (live or ``--no-stream``) and ``skiff top``."""

from __future__ import annotations

import sys
import time
from typing import Any

import click

from skiff.cli.app import App
from skiff.cli.common import short_id
from skiff.cli.formatter import Row, render, tabwrite

DEFAULT = (
    "table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}"
    "\t{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}"
)


def bytes_size(n: float) -> str:
    """go-units' BytesSize: binary units, 4 significant digits (``1.5MiB``)."""
    units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"]
    i = 0
    while n >= 1024 and i < len(units) - 1:
        n /= 1024
        i += 1
    return f"{n:.4g}{units[i]}"


class StatsRow(Row):
    HEADERS = {
        "BlockIO": "BLOCK I/O",
        "CPUPerc": "CPU %",
        "Container": "CONTAINER",
        "ID": "CONTAINER ID",
        "MemPerc": "MEM %",
        "MemUsage": "MEM USAGE / LIMIT",
        "Name": "NAME",
        "NetIO": "NET I/O",
        "PIDs": "PIDS",
    }

    def __init__(self, s: dict[str, Any], name: str, trunc: bool) -> None:
        self.s = s
        self.Container = name
        self.trunc = trunc

    @property
    def ID(self) -> str:
        ident = str(self.s.get("id") or "")
        return short_id(ident) if self.trunc else ident

    @property
    def Name(self) -> str:
        return str(self.s.get("name") or "--").lstrip("/")

    @property
    def CPUPerc(self) -> str:
        cpu, pre = self.s.get("cpu_stats") or {}, self.s.get("precpu_stats") or {}
        total = (cpu.get("cpu_usage") or {}).get("total_usage", 0) - (
            pre.get("cpu_usage") or {}
        ).get("total_usage", 0)
        system = (cpu.get("system_cpu_usage") or 0) - (pre.get("system_cpu_usage") or 0)
        online = (
            cpu.get("online_cpus")
            or len((cpu.get("cpu_usage") or {}).get("percpu_usage") or [])
            or 1
        )
        pct = total / system * online * 100.0 if system > 0 and total > 0 else 0.0
        return f"{pct:.2f}%"

    def _mem(self) -> tuple[float, float]:
        mem = self.s.get("memory_stats") or {}
        usage = float(mem.get("usage") or 0)
        st = mem.get("stats") or {}
        if "total_inactive_file" in st and st["total_inactive_file"] < usage:
            usage -= st["total_inactive_file"]
        elif "inactive_file" in st and st["inactive_file"] < usage:
            usage -= st["inactive_file"]
        return usage, float(mem.get("limit") or 0)

    @property
    def MemUsage(self) -> str:
        usage, limit = self._mem()
        return f"{bytes_size(usage)} / {bytes_size(limit)}"

    @property
    def MemPerc(self) -> str:
        usage, limit = self._mem()
        return f"{usage / limit * 100:.2f}%" if limit else "0.00%"

    @property
    def NetIO(self) -> str:
        from skiff.cli import units

        nets = self.s.get("networks") or {}
        rx = sum(n.get("rx_bytes", 0) for n in nets.values())
        tx = sum(n.get("tx_bytes", 0) for n in nets.values())
        return f"{units.size(rx)} / {units.size(tx)}"

    @property
    def BlockIO(self) -> str:
        from skiff.cli import units

        read = write = 0
        for e in (self.s.get("blkio_stats") or {}).get("io_service_bytes_recursive") or []:
            op = str(e.get("op", "")).lower()
            if op == "read":
                read += e.get("value", 0)
            elif op == "write":
                write += e.get("value", 0)
        return f"{units.size(read)} / {units.size(write)}"

    @property
    def PIDs(self) -> str:
        return str((self.s.get("pids_stats") or {}).get("current", 0))


def _sample(app: App, names: list[str], trunc: bool) -> list[StatsRow]:
    from concurrent.futures import ThreadPoolExecutor

    from skiff.client import APIClient
    from skiff.errors import SkiffError

    def one(name: str) -> StatsRow | None:
        client = APIClient(app.client.host)
        client._api_version = app.client.api_version
        try:
            return StatsRow(client.get(f"/containers/{name}/stats", stream=False), name, trunc)
        except SkiffError as err:
            if len(names) == 1 or err.__class__.__name__ != "NotFound":
                raise
            return None
        finally:
            client.close()

    with ThreadPoolExecutor(max_workers=min(8, max(1, len(names)))) as pool:
        return [r for r in pool.map(one, names) if r is not None]


@click.command("stats")
@click.argument("containers", nargs=-1)
@click.option(
    "-a", "--all", "all_", is_flag=True, help="Show all containers (default shows just running)."
)
@click.option("--format", "fmt", help="Format output using a custom template.")
@click.option(
    "--no-stream", is_flag=True, help="Disable streaming stats and only pull the first result."
)
@click.option("--no-trunc", is_flag=True, help="Do not truncate output.")
@click.pass_obj
def command(
    app: App,
    containers: tuple[str, ...],
    all_: bool,
    fmt: str | None,
    no_stream: bool,
    no_trunc: bool,
) -> None:
    """Display a live stream of container(s) resource usage statistics."""
    explicit = list(containers)
    while True:
        names = explicit or [
            c["Id"] for c in app.client.get("/containers/json", all=all_ or None) or []
        ]
        rows = _sample(app, names, not no_trunc) if names else []
        text = render(rows, fmt, DEFAULT, StatsRow.HEADERS)
        if no_stream:
            sys.stdout.write(text)
            return
        sys.stdout.write("\033[2J\033[H" + text)
        sys.stdout.flush()
        time.sleep(0.5)


@click.command("top", context_settings={"allow_interspersed_args": False})
@click.argument("container")
@click.argument("ps_args", nargs=-1, type=click.UNPROCESSED)
@click.pass_obj
def top_command(app: App, container: str, ps_args: tuple[str, ...]) -> None:
    """Display the running processes of a container."""
    answer = app.client.get(f"/containers/{container}/top", ps_args=" ".join(ps_args) or None)
    lines = ["\t".join(answer.get("Titles") or [])]
    lines += ["\t".join(str(x) for x in p) for p in answer.get("Processes") or []]
    sys.stdout.write(tabwrite(lines, minwidth=20))
