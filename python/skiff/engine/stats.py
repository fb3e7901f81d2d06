"""A running container's resources: usage (``GET /containers/{id}/stats``), its
processes (``GET /containers/{id}/top``) and its limits changed in place
(``POST /containers/{id}/update``).

Stats are read from the container's cgroup the way containerd reads them for dockerd,
and shaped as moby's ``StatsResponse``. Where the cgroup is comes from
``/proc/<init pid>/cgroup`` and the host's cgroup mounts: every v1 hierarchy that
carries a controller (pure v1 or "hybrid", where an empty cgroup2 mount sits beside
them) or the unified hierarchy on a pure v2 host.

- v1: ``cpuacct.usage``, ``cpuacct.usage_percpu``, ``cpuacct.stat`` (USER_HZ ticks),
  ``cpu.stat`` (throttling); ``memory.usage_in_bytes``, ``memory.max_usage_in_bytes``,
  ``memory.limit_in_bytes``, ``memory.failcnt``, ``memory.stat``; ``pids.current``,
  ``pids.max``; ``blkio.io_*_recursive`` (or their ``blkio.throttle.`` versions).
- v2: ``cpu.stat`` (usage_usec, user_usec, system_usec, throttling), ``memory.current``,
  ``memory.max``, ``memory.peak``, ``memory.stat``, ``memory.events`` (oom);
  ``pids.current``, ``pids.max``; ``io.stat``.

``system_cpu_usage`` and ``online_cpus`` come from ``/proc/stat`` (read right after
the cgroup, so that the two deltas the docker CLI divides cover the same time), the
networks from ``/proc/<pid>/net/dev`` in the container's network namespace (all
interfaces but ``lo``). A memory limit above the machine's memory is reported as the
machine's memory, as dockerd does.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from skiff import jsontext
from skiff.engine import ocispec
from skiff.engine.container import (
    DEAD,
    PAUSED,
    REMOVING,
    RESTARTING,
    RUNNING,
    Container,
)
from skiff.engine.containers import RESTART_POLICIES
from skiff.errors import Conflict, InvalidArgument, NotFound, SkiffError
from skiff.timefmt import ZERO_TIME, rfc3339_nano

if TYPE_CHECKING:
    from skiff.engine.containers import ContainerService

#: Seconds between two samples of a stream (and between the two samples of a
#: non-streamed answer that fills ``precpu_stats``).
INTERVAL = 1.0

V1_CONTROLLERS = ("cpu", "cpuacct", "memory", "pids", "blkio", "cpuset")


# ----------------------------------------------------------------------- cgroups


@dataclass(frozen=True)
class Mount:
    point: Path
    root: str  # the mount's root inside its hierarchy


@dataclass(frozen=True)
class Hierarchies:
    v1: dict[str, Mount]  # controller -> its hierarchy's mount
    v2: Mount | None  # the unified hierarchy, on a pure v2 host

    @property
    def unified(self) -> bool:
        return not self.v1 and self.v2 is not None


def parse_mountinfo(text: str) -> Hierarchies:
    v1: dict[str, Mount] = {}
    v2: Mount | None = None
    for line in text.splitlines():
        fields = line.split()
        try:
            sep = fields.index("-")
        except ValueError:
            continue
        if sep < 5 or len(fields) < sep + 3:
            continue
        fstype, options = fields[sep + 1], fields[sep + 3]
        mount = Mount(Path(_unescape(fields[4])), _unescape(fields[3]))
        if fstype == "cgroup":
            for opt in options.split(","):
                if opt in V1_CONTROLLERS and opt not in v1:
                    v1[opt] = mount
        elif fstype == "cgroup2" and v2 is None:
            v2 = mount
    return Hierarchies(v1, v2)


def _unescape(text: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), text)


@functools.cache
def hierarchies() -> Hierarchies:
    return parse_mountinfo(Path("/proc/self/mountinfo").read_text())


def _join(mount: Mount, path: str) -> Path:
    root = mount.root.rstrip("/")
    if root and (path == root or path.startswith(root + "/")):
        path = path[len(root) :]
    return mount.point / path.lstrip("/")


def cgroup_dirs(pid: int, h: Hierarchies | None = None) -> dict[str, Path]:
    """The cgroup directories of process ``pid``: one per v1 controller, or ``{"":
    dir}`` on a v2 host. Empty when the process is gone."""
    h = h or hierarchies()
    try:
        text = Path(f"/proc/{pid}/cgroup").read_text()
    except OSError:
        return {}
    out: dict[str, Path] = {}
    for line in text.splitlines():
        _, controllers, path = line.split(":", 2)
        if not controllers:
            if h.unified and h.v2 is not None:
                return {"": _join(h.v2, path)}
            continue
        for name in controllers.split(","):
            mount = h.v1.get(name)
            if mount is not None:
                out[name] = _join(mount, path)
    return out


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None


def _int(path: Path) -> int | None:
    text = _read(path)
    if text is None:
        return None
    text = text.strip()
    if text == "max":
        return None
    try:
        return int(text)
    except ValueError:
        return None


def _keyed(path: Path) -> dict[str, int]:
    out: dict[str, int] = {}
    for line in (_read(path) or "").splitlines():
        key, _, value = line.partition(" ")
        with contextlib.suppress(ValueError):
            out[key] = int(value.strip())
    return out


@functools.cache
def machine_memory() -> int:
    for line in (_read(Path("/proc/meminfo")) or "").splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    return 0


def clock_ticks() -> int:
    return os.sysconf("SC_CLK_TCK")


def system_cpu() -> tuple[int, int]:
    """(the host's CPU time in nanoseconds, the number of online CPUs), from
    /proc/stat as dockerd computes them."""
    total, cpus = 0, 0
    for line in (_read(Path("/proc/stat")) or "").splitlines():
        if not line.startswith("cpu"):
            break
        parts = line.split()
        if parts[0] == "cpu":
            ticks = sum(int(v) for v in parts[1:8])
            total = ticks * 1_000_000_000 // clock_ticks()
        elif parts[0][3:].isdigit():
            cpus += 1
    return total, cpus


def network_stats(pid: int) -> dict[str, dict[str, int]]:
    """Per-interface counters of the network namespace ``pid`` lives in (not lo)."""
    out: dict[str, dict[str, int]] = {}
    text = _read(Path(f"/proc/{pid}/net/dev")) or ""
    for line in text.splitlines()[2:]:
        name, _, rest = line.partition(":")
        name = name.strip()
        values = rest.split()
        if not name or name == "lo" or len(values) < 12:
            continue
        v = [int(x) for x in values]
        out[name] = {
            "rx_bytes": v[0],
            "rx_packets": v[1],
            "rx_errors": v[2],
            "rx_dropped": v[3],
            "tx_bytes": v[8],
            "tx_packets": v[9],
            "tx_errors": v[10],
            "tx_dropped": v[11],
        }
    return out


# ----------------------------------------------------------------------- samples


def _zero_cpu() -> dict[str, Any]:
    return {
        "cpu_usage": {"total_usage": 0, "usage_in_kernelmode": 0, "usage_in_usermode": 0},
        "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0},
    }


def _no_blkio() -> dict[str, Any]:
    return {
        "io_service_bytes_recursive": None,
        "io_serviced_recursive": None,
        "io_queue_recursive": None,
        "io_service_time_recursive": None,
        "io_wait_time_recursive": None,
        "io_merged_recursive": None,
        "io_time_recursive": None,
        "sectors_recursive": None,
    }


def empty_stats(c: Container) -> dict[str, Any]:
    """What dockerd answers for a container that does not run: names, zeros."""
    return {
        "id": c.id,
        "name": "/" + c.name,
        "os_type": "linux",
        "read": ZERO_TIME,
        "preread": ZERO_TIME,
        "pids_stats": {},
        "blkio_stats": _no_blkio(),
        "num_procs": 0,
        "storage_stats": {},
        "cpu_stats": _zero_cpu(),
        "precpu_stats": _zero_cpu(),
        "memory_stats": {},
    }


def _blkio_entries(path: Path) -> list[dict[str, Any]] | None:
    entries = []
    for line in (_read(path) or "").splitlines():
        parts = line.split()
        if len(parts) != 3 or ":" not in parts[0]:
            continue
        major, _, minor = parts[0].partition(":")
        with contextlib.suppress(ValueError):
            entries.append(
                {"major": int(major), "minor": int(minor), "op": parts[1], "value": int(parts[2])}
            )
    return entries or None


def _v1(dirs: dict[str, Path], out: dict[str, Any]) -> None:
    cpu: dict[str, Any] = _zero_cpu()
    acct = dirs.get("cpuacct")
    if acct is not None:
        usage = cpu["cpu_usage"]
        usage["total_usage"] = _int(acct / "cpuacct.usage") or 0
        percpu = (_read(acct / "cpuacct.usage_percpu") or "").split()
        if percpu:
            usage["percpu_usage"] = [int(v) for v in percpu]
        ticks = _keyed(acct / "cpuacct.stat")
        hz = clock_ticks()
        usage["usage_in_kernelmode"] = ticks.get("system", 0) * 1_000_000_000 // hz
        usage["usage_in_usermode"] = ticks.get("user", 0) * 1_000_000_000 // hz
    if "cpu" in dirs:
        throttle = _keyed(dirs["cpu"] / "cpu.stat")
        cpu["throttling_data"] = {
            "periods": throttle.get("nr_periods", 0),
            "throttled_periods": throttle.get("nr_throttled", 0),
            "throttled_time": throttle.get("throttled_time", 0),
        }
    out["cpu_stats"] = cpu
    mem = dirs.get("memory")
    memory: dict[str, Any] = {}
    if mem is not None:
        stat = _keyed(mem / "memory.stat")
        memory = {
            "usage": _int(mem / "memory.usage_in_bytes") or 0,
            "max_usage": _int(mem / "memory.max_usage_in_bytes") or 0,
            "stats": stat,
            "failcnt": _int(mem / "memory.failcnt") or 0,
            "limit": _int(mem / "memory.limit_in_bytes") or 0,
        }
    out["memory_stats"] = memory
    pids = dirs.get("pids")
    if pids is not None:
        out["pids_stats"] = {
            "current": _int(pids / "pids.current") or 0,
            "limit": _int(pids / "pids.max") or 0,
        }
    blk = dirs.get("blkio")
    blkio = _no_blkio()
    if blk is not None:
        names = {
            "io_service_bytes_recursive": "io_service_bytes_recursive",
            "io_serviced_recursive": "io_serviced_recursive",
            "io_queue_recursive": "io_queued_recursive",
            "io_service_time_recursive": "io_service_time_recursive",
            "io_wait_time_recursive": "io_wait_time_recursive",
            "io_merged_recursive": "io_merged_recursive",
            "io_time_recursive": "time_recursive",
            "sectors_recursive": "sectors_recursive",
        }
        for key, name in names.items():
            blkio[key] = _blkio_entries(blk / f"blkio.{name}")
        if not any(blkio.values()):
            # No CFQ statistics (other schedulers): the throttle layer's counters.
            blkio["io_service_bytes_recursive"] = _blkio_entries(
                blk / "blkio.throttle.io_service_bytes_recursive"
            )
            blkio["io_serviced_recursive"] = _blkio_entries(
                blk / "blkio.throttle.io_serviced_recursive"
            )
    out["blkio_stats"] = blkio


def _v2(d: Path, out: dict[str, Any]) -> None:
    stat = _keyed(d / "cpu.stat")
    out["cpu_stats"] = {
        "cpu_usage": {
            "total_usage": stat.get("usage_usec", 0) * 1000,
            "usage_in_kernelmode": stat.get("system_usec", 0) * 1000,
            "usage_in_usermode": stat.get("user_usec", 0) * 1000,
        },
        "throttling_data": {
            "periods": stat.get("nr_periods", 0),
            "throttled_periods": stat.get("nr_throttled", 0),
            "throttled_time": stat.get("throttled_usec", 0) * 1000,
        },
    }
    memory: dict[str, Any] = {}
    if (d / "memory.current").exists():
        memory = {
            "usage": _int(d / "memory.current") or 0,
            "stats": _keyed(d / "memory.stat"),
            "limit": _int(d / "memory.max") or 2**64 - 1,
        }
        peak = _int(d / "memory.peak")
        if peak:
            memory["max_usage"] = peak
        oom = _keyed(d / "memory.events").get("oom", 0)
        if oom:
            memory["failcnt"] = oom
    out["memory_stats"] = memory
    out["pids_stats"] = {
        "current": _int(d / "pids.current") or 0,
        "limit": _int(d / "pids.max") or 0,
    }
    blkio = _no_blkio()
    entries = []
    for line in (_read(d / "io.stat") or "").splitlines():
        dev, *pairs = line.split()
        major, _, minor = dev.partition(":")
        values = dict(p.split("=", 1) for p in pairs if "=" in p)
        with contextlib.suppress(ValueError):
            for op, key in (("read", "rbytes"), ("write", "wbytes")):
                entries.append(
                    {
                        "major": int(major),
                        "minor": int(minor),
                        "op": op,
                        "value": int(values.get(key, 0)),
                    }
                )
    blkio["io_service_bytes_recursive"] = entries or None
    out["blkio_stats"] = blkio


def sample(c: Container, pid: int, *, networks: bool = True) -> dict[str, Any]:
    """One StatsResponse of the running container ``c`` (init ``pid``), without the
    ``pre*`` fields' values; empty stats when the process is gone."""
    dirs = cgroup_dirs(pid)
    if not dirs:
        return empty_stats(c)
    out = empty_stats(c)
    out["read"] = rfc3339_nano()
    if "" in dirs:
        _v2(dirs[""], out)
    else:
        _v1(dirs, out)
    system, cpus = system_cpu()
    out["cpu_stats"]["system_cpu_usage"] = system
    out["cpu_stats"]["online_cpus"] = cpus
    memory = out["memory_stats"]
    machine = machine_memory()
    if memory and machine and memory.get("limit", 0) > machine:
        memory["limit"] = machine
    out["pids_stats"] = {k: v for k, v in out.get("pids_stats", {}).items() if v}
    if networks:
        nets = network_stats(pid)
        if nets:
            out["networks"] = nets
    return out


def _running_pid(c: Container) -> int:
    if c.state.status in (RUNNING, PAUSED) and c.state.pid:
        return c.state.pid
    return 0


def _wants_networks(c: Container) -> bool:
    mode = c.host_config.get("NetworkMode") or "default"
    return mode != "host"


async def _sample(c: Container) -> dict[str, Any]:
    pid = _running_pid(c)
    if not pid:
        return empty_stats(c)
    return await asyncio.to_thread(sample, c, pid, networks=_wants_networks(c))


def _dump(obj: dict[str, Any]) -> bytes:
    return jsontext.dumps(obj) + b"\n"


async def stats_stream(
    svc: ContainerService, c: Container, *, stream: bool, one_shot: bool
) -> AsyncIterator[bytes]:
    """The answer of ``GET /containers/{id}/stats``, as dockerd gives it: one object,
    or one a second with ``precpu_stats`` from the one before. Without ``one-shot``
    a single answer is taken twice, a second apart, so its CPU delta is real."""
    if not stream:
        first = await _sample(c)
        if one_shot or not _running_pid(c):
            yield _dump(first)
            return
        await asyncio.sleep(INTERVAL)
        second = await _sample(c)
        second["preread"] = first["read"]
        second["precpu_stats"] = first["cpu_stats"]
        yield _dump(second)
        return
    loop = asyncio.get_running_loop()
    previous: dict[str, Any] | None = None
    next_at = loop.time()
    while True:
        try:
            if svc.get(c.id) is not c:
                return
        except NotFound:
            return
        current = await _sample(c)
        if previous is not None:
            current["preread"] = previous["read"]
            current["precpu_stats"] = previous["cpu_stats"]
        yield _dump(current)
        previous = current
        next_at += INTERVAL
        await asyncio.sleep(max(0.0, next_at - loop.time()))


# ----------------------------------------------------------------------- top

_PS_PID_ARG = re.compile(r"\s+([^\s]*)=\s*(PID[^\s]*)")


def _ps_fields(line: str) -> list[str]:
    return line.replace("\t", " ").replace("\f", " ").replace("\r", " ").split(" ")


def parse_ps(output: str, pids: set[int]) -> dict[str, Any]:
    """ps's table, kept to the lines of ``pids`` (and the thread lines after them);
    the last column keeps its spaces."""
    lines = output.split("\n")
    titles = [f for f in _ps_fields(lines[0]) if f]
    if "PID" not in titles:
        raise SkiffError("Couldn't find PID field in ps output")
    pid_index = titles.index("PID")
    processes: list[list[str]] = []
    keep_threads = False
    for line in lines[1:]:
        fields = [f for f in _ps_fields(line) if f]
        if len(fields) <= pid_index:
            continue
        row = [*fields[: len(titles) - 1], " ".join(fields[len(titles) - 1 :])]
        if fields[pid_index] == "-":
            if keep_threads:
                processes.append(row)
            continue
        try:
            pid = int(fields[pid_index])
        except ValueError:
            raise SkiffError(f"Unexpected pid '{fields[pid_index]}'") from None
        keep_threads = pid in pids
        if keep_threads:
            processes.append(row)
    return {"Titles": titles, "Processes": processes}


async def top(svc: ContainerService, c: Container, ps_args: str) -> dict[str, Any]:
    ps_args = ps_args or "-ef"
    for key, value in _PS_PID_ARG.findall(" " + ps_args):
        if key != "pid":
            raise InvalidArgument(f'specifying "{key}={value}" is not allowed')
    if c.state.status == RESTARTING:
        raise Conflict(f"Container {c.id} is restarting, wait until the container is running")
    if c.state.status not in (RUNNING, PAUSED):
        raise Conflict(f"container {c.id} is not running")
    pids = await asyncio.to_thread(svc.runtime.pids, c.id)
    args = [a for a in ps_args.split(" ") if a]
    out = await _run_ps([*args, "-q" + ",".join(str(p) for p in pids)] if pids else args)
    if out is None or isinstance(out, SkiffError):
        # Some ps options cannot be combined with -q: filter ps's whole table.
        out = await _run_ps(args)
    if isinstance(out, SkiffError) or out is None:
        raise out or SkiffError("ps failed")
    result = parse_ps(out, set(pids))
    svc.publish(c, "top")
    return result


async def _run_ps(args: list[str]) -> str | SkiffError | None:
    try:
        proc = await asyncio.create_subprocess_exec(
            "ps",
            *args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
    except OSError as failure:
        return SkiffError(f"ps: {failure}")
    out, errors = await proc.communicate()
    if proc.returncode != 0:
        first = errors.decode(errors="replace").strip().split("\n", 1)[0]
        return SkiffError(f"ps: {first or f'exit status {proc.returncode}'}")
    return out.decode(errors="replace")


# ----------------------------------------------------------------------- update

#: The HostConfig keys ``update`` changes (0 or absent: unchanged).
UPDATABLE = (
    "BlkioWeight",
    "CpuShares",
    "NanoCpus",
    "CpuPeriod",
    "CpuQuota",
    "CpuRealtimePeriod",
    "CpuRealtimeRuntime",
    "CpusetCpus",
    "CpusetMems",
    "Memory",
    "MemorySwap",
    "MemoryReservation",
)


def _as_int(body: dict[str, Any], key: str) -> int:
    value = body.get(key)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidArgument(f"invalid value for {key}: {value!r}")
    return value


def _check_cpuset(text: str, what: str, online: int) -> None:
    try:
        for part in text.split(","):
            lo, _, hi = part.partition("-")
            first, last = int(lo), int(hi or lo)
            if first < 0 or last < first:
                raise ValueError
            if what == "cpus" and last >= online:
                raise InvalidArgument(
                    f"Requested CPUs are not available - requested {text}, "
                    f"available: {'0' if online == 1 else f'0-{online - 1}'}"
                )
    except ValueError:
        raise InvalidArgument(f"Invalid value {text} for cpuset {what}") from None


def validate_update(body: dict[str, Any]) -> None:
    """dockerd's checks of an update's resources (verifyContainerSettings)."""
    for key in UPDATABLE:
        if key in ("CpusetCpus", "CpusetMems"):
            if body.get(key) is not None and not isinstance(body.get(key), str):
                raise InvalidArgument(f"invalid value for {key}: {body.get(key)!r}")
            continue
        _as_int(body, key)
    memory, swap = _as_int(body, "Memory"), _as_int(body, "MemorySwap")
    if 0 < memory < 6 * 1024 * 1024:
        raise InvalidArgument("Minimum memory limit allowed is 6MB")
    if memory > 0 and swap > 0 and swap < memory:
        raise InvalidArgument(
            "Minimum memoryswap limit should be larger than memory limit, see usage"
        )
    nano = _as_int(body, "NanoCpus")
    period, quota = _as_int(body, "CpuPeriod"), _as_int(body, "CpuQuota")
    if nano > 0 and (period > 0 or quota > 0):
        raise InvalidArgument("Conflicting options: Nano CPUs and CPU Period cannot both be set")
    online = os.cpu_count() or 1
    if nano < 0 or nano > online * 1_000_000_000:
        raise InvalidArgument(
            f"Range of CPUs is from 0.01 to {online}.00, as there are only {online} CPUs available"
        )
    if period and not 1000 <= period <= 1_000_000:
        raise InvalidArgument(
            "CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)"
        )
    if 0 < quota < 1000:
        raise InvalidArgument("CPU cfs quota can not be less than 1ms (i.e. 1000)")
    if _as_int(body, "CpuShares") < 0:
        raise InvalidArgument("invalid CPU shares: must not be negative")
    if body.get("CpusetCpus"):
        _check_cpuset(body["CpusetCpus"], "cpus", online)
    if body.get("CpusetMems"):
        _check_cpuset(body["CpusetMems"], "mems", online)
    pids = body.get("PidsLimit")
    if pids is not None and (isinstance(pids, bool) or not isinstance(pids, int)):
        raise InvalidArgument(f"invalid value for PidsLimit: {pids!r}")
    policy = body.get("RestartPolicy") or {}
    if not isinstance(policy, dict):
        raise InvalidArgument("RestartPolicy must be an object")
    name = policy.get("Name") or ""
    if name not in RESTART_POLICIES:
        raise InvalidArgument(f"invalid restart policy: unknown policy '{name}'")
    retries = policy.get("MaximumRetryCount") or 0
    if not isinstance(retries, int) or retries < 0:
        raise InvalidArgument("invalid restart policy: maximum retry count cannot be negative")
    if retries and name != "on-failure":
        raise InvalidArgument(
            "invalid restart policy: maximum retry count can only be used with 'on-failure'"
        )


def merge_update(hc: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
    """The HostConfig after the update (moby's UpdateContainer rules); raises
    InvalidArgument for a conflicting update."""
    new = dict(hc)
    cur = {k: int(hc.get(k) or 0) for k in ("NanoCpus", "CpuPeriod", "CpuQuota")}
    nano, period, quota = (_as_int(body, k) for k in ("NanoCpus", "CpuPeriod", "CpuQuota"))
    if nano > 0 and cur["CpuPeriod"] > 0:
        raise InvalidArgument(
            "Conflicting options: Nano CPUs cannot be updated as CPU Period has already been set"
        )
    if nano > 0 and cur["CpuQuota"] > 0:
        raise InvalidArgument(
            "Conflicting options: Nano CPUs cannot be updated as CPU Quota has already been set"
        )
    if period > 0 and cur["NanoCpus"] > 0:
        raise InvalidArgument(
            "Conflicting options: CPU Period cannot be updated as NanoCPUs has already been set"
        )
    if quota > 0 and cur["NanoCpus"] > 0:
        raise InvalidArgument(
            "Conflicting options: CPU Quota cannot be updated as NanoCPUs has already been set"
        )
    for key in UPDATABLE:
        if key in ("Memory", "MemorySwap"):
            continue
        value = body.get(key)
        if value:
            new[key] = value
    memory, swap = _as_int(body, "Memory"), _as_int(body, "MemorySwap")
    cur_memory, cur_swap = int(hc.get("Memory") or 0), int(hc.get("MemorySwap") or 0)
    # A container created with a memory limit and no swap has twice the limit as
    # memory+swap (dockerd records that at create; here it is implied).
    effective_swap = cur_swap or (2 * cur_memory if cur_memory > 0 else 0)
    if memory:
        if not swap and effective_swap > 0 and memory > effective_swap:
            raise InvalidArgument(
                "Memory limit should be smaller than already set memoryswap limit, update "
                "the memoryswap at the same time"
            )
        if not swap and effective_swap and not cur_swap:
            new["MemorySwap"] = effective_swap
        new["Memory"] = memory
    if swap:
        new["MemorySwap"] = swap
    new_swap = int(new.get("MemorySwap") or 0)
    if new.get("Memory") and 0 < new_swap < int(new["Memory"]):
        raise InvalidArgument(
            "Minimum memoryswap limit should be larger than memory limit, see usage"
        )
    pids = body.get("PidsLimit")
    if pids is not None:
        new["PidsLimit"] = pids if pids > 0 else 0
    policy = body.get("RestartPolicy") or {}
    if policy.get("Name"):
        if hc.get("AutoRemove") and policy["Name"] != "no":
            raise InvalidArgument(
                "Restart policy cannot be updated because AutoRemove is enabled for the container"
            )
        new["RestartPolicy"] = {
            "Name": policy["Name"],
            "MaximumRetryCount": int(policy.get("MaximumRetryCount") or 0),
        }
    return new


def update_resources(new_hc: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
    """The OCI linux.resources the runtime applies for an update."""
    res = ocispec.resources(new_hc)
    pids = body.get("PidsLimit")
    if pids is not None:
        res["pids"] = {"limit": pids if pids > 0 else -1}
    return res


async def update(svc: ContainerService, c: Container, body: Any) -> list[str]:
    """Changes the container's resources (in its cgroup when it runs) and restart
    policy, and keeps them in its HostConfig. Returns warnings."""
    if not isinstance(body, dict):
        raise InvalidArgument("invalid JSON body: an object is needed")
    validate_update(body)
    live = svc.live(c)
    async with live.lock:
        if c.state.status in (REMOVING, DEAD) or live.removed:
            raise Conflict(
                f"Cannot update container {c.id}: container is marked for removal and "
                'cannot be "update"'
            )
        try:
            new_hc = merge_update(c.host_config, body)
        except InvalidArgument as err:
            raise InvalidArgument(f"Cannot update container {c.id}: {err.message}") from None
        # A standby taken at the create was made with the old resources.
        await svc.drop_standby(c)
        if c.state.status in (RUNNING, PAUSED):
            resources = update_resources(new_hc, body)
            if resources:
                try:
                    await asyncio.to_thread(svc.runtime.update, c.id, resources)
                except SkiffError as err:
                    raise type(err)(f"Cannot update container {c.id}: {err.message}") from None
        old = c.host_config
        c.host_config = new_hc
        try:
            svc.save(c)
        except BaseException:
            c.host_config = old
            raise
    svc.publish(c, "update")
    return []
