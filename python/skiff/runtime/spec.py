"""OCI runtime configs (config.json) with Docker's defaults.

:func:`default_config` builds the config a ``docker run`` of an image would get:
Docker's default capability set, masked and read-only paths, the standard mounts,
all namespaces but user and cgroup (cgroup is private on cgroup v2 hosts, as Docker
does). Callers change the dict it returns; :mod:`skiff.runtime.bundle` writes it.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

#: The version written into configs: the oldest the fields used need, so that older
#: runtimes (crun 1.8 refuses 1.2) accept them too.
OCI_VERSION = "1.0.2"

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

#: Docker's default capabilities (moby oci/caps/defaults.go).
DEFAULT_CAPS = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
]

MASKED_PATHS = [
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
]

READONLY_PATHS = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]


@functools.cache
def cgroup_v2_host() -> bool:
    """Whether the host's cgroups are v2 only (looked at once: a host does not
    change its cgroup mode while a daemon runs)."""
    return Path("/sys/fs/cgroup/cgroup.controllers").exists()


def default_mounts() -> list[dict[str, Any]]:
    return [
        {
            "destination": "/proc",
            "type": "proc",
            "source": "proc",
            "options": ["nosuid", "noexec", "nodev"],
        },
        {
            "destination": "/dev",
            "type": "tmpfs",
            "source": "tmpfs",
            "options": ["nosuid", "strictatime", "mode=755", "size=65536k"],
        },
        {
            "destination": "/dev/pts",
            "type": "devpts",
            "source": "devpts",
            "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"],
        },
        {
            "destination": "/sys",
            "type": "sysfs",
            "source": "sysfs",
            "options": ["nosuid", "noexec", "nodev", "ro"],
        },
        {
            "destination": "/sys/fs/cgroup",
            "type": "cgroup",
            "source": "cgroup",
            "options": ["ro", "nosuid", "noexec", "nodev"],
        },
        {
            "destination": "/dev/mqueue",
            "type": "mqueue",
            "source": "mqueue",
            "options": ["nosuid", "noexec", "nodev"],
        },
        {
            "destination": "/dev/shm",
            "type": "tmpfs",
            "source": "shm",
            "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=67108864"],
        },
    ]


def default_config(
    args: list[str],
    *,
    rootfs: str = "rootfs",
    env: list[str] | None = None,
    cwd: str = "/",
    hostname: str = "",
    terminal: bool = False,
    network: bool = True,
    cgroups_path: str | None = None,
) -> dict[str, Any]:
    """A config.json for running ``args`` the way Docker would by default.

    ``network=False`` keeps the host's network namespace (``--network host``).
    """
    namespaces = [{"type": t} for t in ("pid", "ipc", "uts", "mount")]
    if network:
        namespaces.append({"type": "network"})
    if cgroup_v2_host():
        namespaces.append({"type": "cgroup"})
    linux: dict[str, Any] = {
        "namespaces": namespaces,
        "maskedPaths": list(MASKED_PATHS),
        "readonlyPaths": list(READONLY_PATHS),
        "resources": {"devices": [{"allow": False, "access": "rwm"}]},
    }
    if cgroups_path:
        linux["cgroupsPath"] = cgroups_path
    config: dict[str, Any] = {
        "ociVersion": OCI_VERSION,
        "process": {
            "terminal": terminal,
            "user": {"uid": 0, "gid": 0},
            "args": list(args),
            "env": env if env is not None else [f"PATH={DEFAULT_PATH}"],
            "cwd": cwd,
            "capabilities": {
                "bounding": list(DEFAULT_CAPS),
                "effective": list(DEFAULT_CAPS),
                "permitted": list(DEFAULT_CAPS),
            },
            "noNewPrivileges": False,
        },
        "root": {"path": rootfs, "readonly": False},
        "mounts": default_mounts(),
        "linux": linux,
    }
    if hostname:
        config["hostname"] = hostname
    return config
