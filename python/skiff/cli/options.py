"""Parsing docker's flag values into Engine API fields: environment, ports, volumes,
mounts, restart policies, ulimits, health checks."""

from __future__ import annotations

import os

from skiff.errors import InvalidArgument

TYPE_CHECKING = False  # typing itself costs the CLI's start ~10 ms
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Any


def parse_env(files: Iterable[str], items: Iterable[str]) -> list[str]:
    """``--env-file`` then ``-e``; ``KEY`` alone takes our own value (dropped if unset)."""
    out: list[str] = []
    for path in files:
        try:
            with open(path, encoding="utf-8") as f:
                lines = f.read().splitlines()
        except OSError as err:
            raise InvalidArgument(f"cannot read env file {path}: {err.strerror}") from None
        for line in lines:
            line = line.lstrip()
            if not line or line.startswith("#"):
                continue
            _add_env(out, line)
    for item in items:
        _add_env(out, item)
    return out


def _add_env(out: list[str], item: str) -> None:
    key, eq, _ = item.partition("=")
    if not key:
        raise InvalidArgument(f"invalid environment variable: {item!r}")
    if eq:
        out.append(item)
    elif key in os.environ:
        out.append(f"{key}={os.environ[key]}")


def _port_range(text: str) -> list[int]:
    lo, dash, hi = text.partition("-")
    try:
        start = int(lo)
        end = int(hi) if dash else start
    except ValueError:
        raise InvalidArgument(f"invalid port {text!r}") from None
    if not (0 <= start <= end <= 65535):
        raise InvalidArgument(f"invalid port range {text!r}")
    return list(range(start, end + 1))


def parse_ports(
    publish: Iterable[str],
    expose: Iterable[str],
    exposed: dict[str, dict[str, Any]],
    bindings: dict[str, list[dict[str, str]]],
) -> None:
    """``-p [ip:][hostPort:]containerPort[/proto]`` (ranges too) and ``--expose``."""
    for spec in publish:
        rest, _, proto = spec.partition("/")
        proto = proto or "tcp"
        if proto not in ("tcp", "udp", "sctp"):
            raise InvalidArgument(f"invalid proto: {proto}")
        ip = ""
        if rest.startswith("["):  # [v6]:host:container
            end = rest.index("]")
            ip, rest = rest[1:end], rest[end + 2 :]
        parts = rest.split(":")
        if len(parts) == 3:
            ip, host_part, container_part = parts
        elif len(parts) == 2:
            host_part, container_part = parts
        elif len(parts) == 1:
            host_part, container_part = "", parts[0]
        else:
            raise InvalidArgument(f"invalid port specification: {spec!r}")
        container_ports = _port_range(container_part)
        host_ports = _port_range(host_part) if host_part else []
        if host_ports and len(host_ports) != len(container_ports) and len(host_ports) != 1:
            raise InvalidArgument(
                f"invalid ranges specified for container and host ports: {spec!r}"
            )
        for i, port in enumerate(container_ports):
            key = f"{port}/{proto}"
            exposed[key] = {}
            if len(host_ports) == len(container_ports):
                host_port = str(host_ports[i])
            elif host_ports:
                host_port = (
                    f"{host_ports[0]}-{host_ports[-1]}"
                    if len(host_ports) > 1
                    else str(host_ports[0])
                )
            else:
                host_port = ""
            bindings.setdefault(key, []).append({"HostIp": ip, "HostPort": host_port})
    for spec in expose:
        rest, _, proto = spec.partition("/")
        for port in _port_range(rest):
            exposed[f"{port}/{proto or 'tcp'}"] = {}


def parse_volume(spec: str, binds: list[str], volumes: dict[str, dict[str, Any]]) -> None:
    """``-v SRC:DST[:OPTS]`` is a bind (or named volume); ``-v DST`` an anonymous one."""
    parts = spec.split(":")
    if len(parts) == 1:
        if not spec.startswith("/"):
            raise InvalidArgument(
                f"invalid volume specification: {spec!r}: the path must be absolute"
            )
        volumes[spec] = {}
        return
    if len(parts) > 3:
        raise InvalidArgument(f"invalid volume specification: {spec!r}")
    source = parts[0]
    if source.startswith((".", "~")) or (source and "/" in source and not source.startswith("/")):
        source = os.path.abspath(os.path.expanduser(source))
    if not parts[1].startswith("/"):
        raise InvalidArgument(
            f"invalid volume specification: {spec!r}: the target must be absolute"
        )
    binds.append(":".join([source, *parts[1:]]))


def parse_mount(spec: str) -> dict[str, Any]:
    """``--mount type=bind,source=/a,target=/b,readonly`` as an API Mount."""
    from skiff.cli.units import ram_in_bytes

    mount: dict[str, Any] = {"Type": "volume"}
    for field in spec.split(","):
        key, eq, value = field.partition("=")
        key = key.strip().lower()
        if key in ("type",):
            mount["Type"] = value
        elif key in ("source", "src"):
            mount["Source"] = value
        elif key in ("target", "destination", "dst"):
            mount["Target"] = value
        elif key in ("readonly", "ro"):
            mount["ReadOnly"] = not eq or value.lower() in ("1", "true")
        elif key == "bind-propagation":
            mount.setdefault("BindOptions", {})["Propagation"] = value
        elif key == "bind-recursive":
            mount.setdefault("BindOptions", {})["NonRecursive"] = value == "disabled"
        elif key == "volume-nocopy":
            mount.setdefault("VolumeOptions", {})["NoCopy"] = not eq or value.lower() in (
                "1",
                "true",
            )
        elif key == "volume-driver":
            mount.setdefault("VolumeOptions", {}).setdefault("DriverConfig", {})["Name"] = value
        elif key == "volume-opt":
            k, _, v = value.partition("=")
            opts = mount.setdefault("VolumeOptions", {}).setdefault("DriverConfig", {})
            opts.setdefault("Options", {})[k] = v
        elif key == "tmpfs-size":
            mount.setdefault("TmpfsOptions", {})["SizeBytes"] = ram_in_bytes(value)
        elif key == "tmpfs-mode":
            mount.setdefault("TmpfsOptions", {})["Mode"] = int(value, 8)
        elif key == "consistency":
            mount["Consistency"] = value
        else:
            raise InvalidArgument(f"unexpected key {key!r} in --mount {spec!r}")
    if "Target" not in mount:
        raise InvalidArgument(f"invalid --mount {spec!r}: target is required")
    return mount


def parse_restart(text: str) -> dict[str, Any]:
    name, _, count = (text or "no").partition(":")
    if name not in ("no", "always", "unless-stopped", "on-failure"):
        raise InvalidArgument(
            f"invalid restart policy {text!r}: use no, always, unless-stopped or on-failure[:N]"
        )
    if count and name != "on-failure":
        raise InvalidArgument(f"maximum retry count cannot be used with restart policy '{name}'")
    try:
        retries = int(count) if count else 0
    except ValueError:
        raise InvalidArgument(f"invalid restart policy {text!r}: N must be a number") from None
    return {"Name": "" if name == "no" else name, "MaximumRetryCount": retries}


def parse_ulimit(text: str) -> dict[str, Any]:
    """``nofile=1024[:2048]``."""
    name, eq, values = text.partition("=")
    soft, _, hard = values.partition(":")
    try:
        if not eq:
            raise ValueError
        s = int(soft)
        h = int(hard) if hard else s
    except ValueError:
        raise InvalidArgument(f"invalid ulimit {text!r}: expected NAME=SOFT[:HARD]") from None
    if s > h:
        raise InvalidArgument(
            f"ulimit soft limit must be less than or equal to hard limit: {s} > {h}"
        )
    return {"Name": name, "Soft": s, "Hard": h}


def parse_healthcheck(o: dict[str, Any]) -> dict[str, Any] | None:
    """``--health-*`` and ``--no-healthcheck`` as Config.Healthcheck (durations in ns)."""
    given = [
        o.get(k)
        for k in (
            "health_cmd",
            "health_interval",
            "health_timeout",
            "health_start_period",
            "health_start_interval",
        )
    ]
    if o.get("no_healthcheck"):
        if any(given) or o.get("health_retries"):
            raise InvalidArgument("--no-healthcheck conflicts with --health-* options")
        return {"Test": ["NONE"]}
    if not any(given) and o.get("health_retries") is None:
        return None
    from skiff.cli.units import parse_duration

    check: dict[str, Any] = {}
    if o.get("health_cmd"):
        check["Test"] = ["CMD-SHELL", o["health_cmd"]]
    for flag, key in (
        ("health_interval", "Interval"),
        ("health_timeout", "Timeout"),
        ("health_start_period", "StartPeriod"),
        ("health_start_interval", "StartInterval"),
    ):
        if o.get(flag):
            seconds = parse_duration(o[flag])
            if seconds < 0:
                raise InvalidArgument(f"--{flag.replace('_', '-')} cannot be negative")
            check[key] = int(seconds * 1e9)
    if o.get("health_retries") is not None:
        if o["health_retries"] < 0:
            raise InvalidArgument("--health-retries cannot be negative")
        check["Retries"] = o["health_retries"]
    return check
