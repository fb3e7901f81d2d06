"""A container as the daemon keeps it: Docker's ``Config`` and ``HostConfig`` as the
client sent them (normalised, merged with the image's defaults), and its ``State``.

The whole record is one JSON document in the ``containers`` table, rewritten on every
state change (:mod:`skiff.engine.store`). :meth:`Container.inspect` gives the shape of
``GET /containers/{id}/json``; :meth:`Container.summary` that of one entry of
``GET /containers/json``.

On disk, ``<data root>/containers/<id>/``::

    config.json         the OCI bundle's config (rewritten at each start)
    rootfs/             the overlay mount point (mounted while running)
    init/               the container's read-only "init" layer, top lower of the
                        overlay: the mount points the runtime mounts over
                        (/dev, /proc, /sys, /etc/hostname, hosts, resolv.conf)
    upper/, work/       the overlay's writable layer and its work dir
    hostname, hosts, resolv.conf    bind-mounted into the container
    <id>-json.log       the json-file log (rotated as .1, .2, ... by the monitor)

and ``<exec root>/m/<first 16 characters of the id>/`` holds the monitor's attach
socket, exit file and the runtime's log while it runs.
"""

from __future__ import annotations

import copy
import os
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from skiff.timefmt import ZERO_TIME, parse_rfc3339

#: Docker's status words.
CREATED, RUNNING, PAUSED, RESTARTING, REMOVING, EXITED, DEAD = (
    "created",
    "running",
    "paused",
    "restarting",
    "removing",
    "exited",
    "dead",
)


@dataclass
class State:
    status: str = CREATED
    pid: int = 0
    exit_code: int = 0
    error: str = ""
    oom_killed: bool = False
    started_at: str = ZERO_TIME
    finished_at: str = ZERO_TIME
    monitor_pid: int = 0
    #: the monitor's start time (clock ticks since boot, /proc/PID/stat), which
    #: tells it from a later process with the same pid
    monitor_start: int = 0
    health: dict[str, Any] | None = None

    @property
    def running(self) -> bool:
        return self.status in (RUNNING, PAUSED, RESTARTING)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "Status": self.status,
            "Running": self.status in (RUNNING, PAUSED),
            "Paused": self.status == PAUSED,
            "Restarting": self.status == RESTARTING,
            "OOMKilled": self.oom_killed,
            "Dead": self.status == DEAD,
            "Pid": self.pid if self.status in (RUNNING, PAUSED) else 0,
            "ExitCode": self.exit_code,
            "Error": self.error,
            "StartedAt": self.started_at,
            "FinishedAt": self.finished_at,
        }
        if self.health is not None:
            out["Health"] = copy.deepcopy(self.health)
        return out

    def record(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "pid": self.pid,
            "exit_code": self.exit_code,
            "error": self.error,
            "oom_killed": self.oom_killed,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "monitor_pid": self.monitor_pid,
            "monitor_start": self.monitor_start,
            "health": self.health,
        }

    @classmethod
    def from_record(cls, d: dict[str, Any]) -> State:
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


@dataclass
class Container:
    id: str
    name: str  # without the leading "/"
    created: str
    image_id: str
    config: dict[str, Any]  # Docker's Config (Image is the name as the client gave it)
    host_config: dict[str, Any]
    path: str
    args: list[str]
    root: Path  # <data root>/containers/<id>
    state: State = field(default_factory=State)
    restart_count: int = 0
    has_been_started: bool = False
    manually_stopped: bool = False
    #: lower layer directories of the image, top first (for the overlay)
    lowers: list[str] = field(default_factory=list)
    exec_ids: list[str] = field(default_factory=list)

    # ------------------------------------------------------------------ paths

    @property
    def rootfs(self) -> Path:
        return self.root / "rootfs"

    def rootfs_mounted(self) -> bool:
        """Whether something is mounted on :attr:`rootfs`: os.path.ismount
        without its walk of the real path of the parent (a stat of every
        component), which is the container's own directory, never a link."""
        try:
            root = os.lstat(self.rootfs)
            parent = os.lstat(self.root)
        except OSError:
            return False
        if stat.S_ISLNK(root.st_mode):
            return False
        return root.st_dev != parent.st_dev or root.st_ino == parent.st_ino

    @property
    def upper(self) -> Path:
        return self.root / "upper"

    @property
    def work(self) -> Path:
        return self.root / "work"

    @property
    def log_path(self) -> Path:
        return self.root / f"{self.id}-json.log"

    @property
    def tty(self) -> bool:
        return bool(self.config.get("Tty"))

    @property
    def short_id(self) -> str:
        return self.id[:12]

    @property
    def image_name(self) -> str:
        return str(self.config.get("Image") or self.image_id)

    # ------------------------------------------------------------------ records

    def record(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "created": self.created,
            "image_id": self.image_id,
            "config": self.config,
            "host_config": self.host_config,
            "path": self.path,
            "args": self.args,
            "root": str(self.root),
            "state": self.state.record(),
            "restart_count": self.restart_count,
            "has_been_started": self.has_been_started,
            "manually_stopped": self.manually_stopped,
            "lowers": self.lowers,
        }

    @classmethod
    def from_record(cls, d: dict[str, Any]) -> Container:
        return cls(
            id=d["id"],
            name=d["name"],
            created=d["created"],
            image_id=d["image_id"],
            config=d["config"],
            host_config=d["host_config"],
            path=d["path"],
            args=list(d["args"]),
            root=Path(d["root"]),
            state=State.from_record(d["state"]),
            restart_count=int(d.get("restart_count", 0)),
            has_been_started=bool(d.get("has_been_started")),
            manually_stopped=bool(d.get("manually_stopped")),
            lowers=list(d.get("lowers", [])),
        )

    # ------------------------------------------------------------------ API shapes

    def mounts_json(self) -> list[dict[str, Any]]:
        """``Mounts`` of inspect and list: binds, volumes and tmpfs mounts."""
        out: list[dict[str, Any]] = []
        for bind in self.host_config.get("Binds") or []:
            parts = bind.split(":")
            src, dst = parts[0], parts[1] if len(parts) > 1 else parts[0]
            opts = parts[2].split(",") if len(parts) > 2 else []
            out.append(
                {
                    "Type": "bind",
                    "Source": src,
                    "Destination": dst,
                    "Mode": parts[2] if len(parts) > 2 else "",
                    "RW": "ro" not in opts,
                    "Propagation": "rprivate",
                }
            )
        for m in self.host_config.get("Mounts") or []:
            kind = m.get("Type", "volume")
            entry = {
                "Type": kind,
                "Source": m.get("Source", "") if kind == "bind" else "",
                "Destination": m.get("Target", ""),
                "Mode": "",
                "RW": not m.get("ReadOnly", False),
                "Propagation": "rprivate" if kind == "bind" else "",
            }
            out.append(entry)
        for dst in self.host_config.get("Tmpfs") or {}:
            out.append(
                {
                    "Type": "tmpfs",
                    "Source": "",
                    "Destination": dst,
                    "Mode": "",
                    "RW": True,
                    "Propagation": "",
                }
            )
        return out

    def network_settings(self) -> dict[str, Any]:
        mode = self.host_config.get("NetworkMode") or "default"
        name = "bridge" if mode == "default" else mode
        return {
            "Bridge": "",
            "SandboxID": self.id if self.state.running else "",
            "SandboxKey": f"/proc/{self.state.pid}/ns/net" if self.state.running else "",
            "HairpinMode": False,
            "LinkLocalIPv6Address": "",
            "LinkLocalIPv6PrefixLen": 0,
            "Ports": {},
            "SecondaryIPAddresses": None,
            "SecondaryIPv6Addresses": None,
            "EndpointID": "",
            "Gateway": "",
            "GlobalIPv6Address": "",
            "GlobalIPv6PrefixLen": 0,
            "IPAddress": "",
            "IPPrefixLen": 0,
            "IPv6Gateway": "",
            "MacAddress": "",
            "Networks": {
                name: {
                    "IPAMConfig": None,
                    "Links": None,
                    "Aliases": None,
                    "MacAddress": "",
                    "NetworkID": name,
                    "EndpointID": "",
                    "Gateway": "",
                    "IPAddress": "",
                    "IPPrefixLen": 0,
                    "IPv6Gateway": "",
                    "GlobalIPv6Address": "",
                    "GlobalIPv6PrefixLen": 0,
                    "DriverOpts": None,
                    "DNSNames": None,
                }
            },
        }

    def inspect(self) -> dict[str, Any]:
        """``GET /containers/{id}/json``. It shares the container's own Config and
        HostConfig (not copies: copying was ~40 % of an inspect): for serializing
        at once, not for changing."""
        return {
            "Id": self.id,
            "Created": self.created,
            "Path": self.path,
            "Args": list(self.args),
            "State": self.state.to_json(),
            "Image": self.image_id,
            "ResolvConfPath": str(self.root / "resolv.conf"),
            "HostnamePath": str(self.root / "hostname"),
            "HostsPath": str(self.root / "hosts"),
            "LogPath": str(self.log_path),
            "Name": "/" + self.name,
            "RestartCount": self.restart_count,
            "Driver": "overlay2",
            "Platform": "linux",
            "MountLabel": "",
            "ProcessLabel": "",
            "AppArmorProfile": "",
            "ExecIDs": list(self.exec_ids) or None,
            "HostConfig": self.host_config,
            "GraphDriver": {
                "Name": "overlay2",
                "Data": {
                    "LowerDir": ":".join(self.lowers),
                    "MergedDir": str(self.rootfs),
                    "UpperDir": str(self.upper),
                    "WorkDir": str(self.work),
                },
            },
            "Mounts": self.mounts_json(),
            "Config": self.config,
            "NetworkSettings": self.network_settings(),
        }

    def status_text(self, now: float | None = None) -> str:
        """The ``Status`` column of ``docker ps``: "Up 2 minutes", "Exited (0) 5
        seconds ago", "Created"."""
        from skiff.engine.humanize import duration

        now = time.time() if now is None else now
        st = self.state
        if st.status in (RUNNING, PAUSED):
            text = "Up " + duration(now - parse_rfc3339(st.started_at))
            if st.health is not None:
                health = st.health.get("Status", "")
                text += f" (health: {health})" if health == "starting" else f" ({health})"
            return text + (" (Paused)" if st.status == PAUSED else "")
        if st.status == RESTARTING:
            return (
                f"Restarting ({st.exit_code}) {duration(now - parse_rfc3339(st.finished_at))} ago"
            )
        if st.status == REMOVING:
            return "Removal In Progress"
        if st.status == DEAD:
            return "Dead"
        if st.status == EXITED and self.has_been_started:
            return f"Exited ({st.exit_code}) {duration(now - parse_rfc3339(st.finished_at))} ago"
        return "Created"

    def summary(self) -> dict[str, Any]:
        """One entry of ``GET /containers/json``."""
        args = self.args
        command = " ".join([self.path, *args]) if self.path else ""
        mode = self.host_config.get("NetworkMode") or "default"
        return {
            "Id": self.id,
            "Names": ["/" + self.name],
            "Image": self.image_name,
            "ImageID": self.image_id,
            "Command": command,
            "Created": int(parse_rfc3339(self.created)),
            "Ports": [],
            "Labels": dict(self.config.get("Labels") or {}),
            "State": self.state.status,
            "Status": self.status_text(),
            "HostConfig": {"NetworkMode": mode},
            "NetworkSettings": {"Networks": self.network_settings()["Networks"]},
            "Mounts": self.mounts_json(),
        }
