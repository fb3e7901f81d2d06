"""skiffd's configuration: dockerd's flags and its ``daemon.json`` keys.

A setting may come from a flag or from the config file (default
``/etc/skiff/daemon.json``), not both: like dockerd, naming one in both places is an
error, and so is a key the daemon does not know.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from skiff.errors import InvalidArgument
from skiff.hosts import DEFAULT_HOST, Host, parse_host

DEFAULT_CONFIG_FILE = "/etc/skiff/daemon.json"


@dataclass
class DaemonConfig:
    hosts: list[str] = field(default_factory=lambda: [DEFAULT_HOST])
    data_root: str = "/var/lib/skiff"
    exec_root: str = "/run/skiff"
    pidfile: str = "/run/skiff/skiffd.pid"
    group: str = "skiff"
    debug: bool = False
    log_level: str = "info"
    registry_mirrors: list[str] = field(default_factory=list)
    insecure_registries: list[str] = field(default_factory=list)
    log_driver: str = "json-file"
    log_opts: dict[str, str] = field(default_factory=dict)
    live_restore: bool = False
    default_runtime: str = "skiff-runtime"
    default_ulimits: dict[str, dict[str, int]] = field(default_factory=dict)
    default_address_pools: list[dict[str, object]] = field(default_factory=list)
    max_concurrent_downloads: int = 6  # docker says 3; our pulls unpack while they download
    max_concurrent_uploads: int = 5
    shutdown_timeout: int = 15
    cgroup_parent: str = "/skiff"
    #: skiffd's own: keep a container made ahead of need like the last one started
    #: (see skiff.engine.standby)
    standby_containers: bool = True
    tls: bool = False
    tlsverify: bool = False
    tlscacert: str = ""
    tlscert: str = ""
    tlskey: str = ""

    @property
    def listen(self) -> list[Host]:
        return [parse_host(h) for h in self.hosts]


#: daemon.json key -> DaemonConfig attribute (dockerd's key names).
KEYS = {f.name.replace("_", "-"): f.name for f in fields(DaemonConfig)}

_LOG_LEVELS = ("debug", "info", "warn", "error", "fatal")


def load(config_file: str | None, flags: dict[str, Any]) -> DaemonConfig:
    """Merges the config file and the flags given on the command line.

    ``flags`` holds only the flags the user actually gave (attribute names). A missing
    file is fine when it is the default one, an error when it was named.
    """
    from_file: dict[str, Any] = {}
    path = Path(config_file or DEFAULT_CONFIG_FILE)
    if path.exists():
        try:
            raw = json.loads(path.read_text() or "{}")
        except ValueError as err:
            raise InvalidArgument(f"unable to configure the daemon from {path}: {err}") from None
        if not isinstance(raw, dict):
            raise InvalidArgument(f"unable to configure the daemon from {path}: not a JSON object")
        unknown = sorted(set(raw) - set(KEYS))
        if unknown:
            raise InvalidArgument(
                "the following directives don't match any configuration option: "
                + ", ".join(unknown)
            )
        from_file = {KEYS[k]: v for k, v in raw.items()}
    elif config_file:
        raise InvalidArgument(f"unable to configure the daemon: {path} does not exist")

    both = sorted(set(from_file) & set(flags))
    if both:
        names = ", ".join(name.replace("_", "-") for name in both)
        raise InvalidArgument(
            "the following directives are specified both as a flag and in the configuration "
            f"file: {names} (from flag and from file {path})"
        )
    config = DaemonConfig(**{**from_file, **flags})
    _validate(config)
    return config


def _validate(config: DaemonConfig) -> None:
    if not isinstance(config.hosts, list) or not config.hosts:
        raise InvalidArgument("hosts must be a non-empty list of addresses")
    for host in config.listen:
        if host.scheme == "tcp" and not (
            config.tlsverify and config.tlscacert and config.tlscert and config.tlskey
        ):
            raise InvalidArgument(
                f"cannot listen on {host}: TCP is served only with TLS and client "
                "certificate verification (--tlsverify --tlscacert CA --tlscert CERT "
                "--tlskey KEY)"
            )
    for name in ("tlscacert", "tlscert", "tlskey"):
        value = getattr(config, name)
        if value and not Path(value).is_file():
            raise InvalidArgument(f"{name}: no such file {value!r}")
    for name in ("data_root", "exec_root", "pidfile"):
        value = getattr(config, name)
        if not isinstance(value, str) or not value.startswith("/"):
            raise InvalidArgument(
                f"{name.replace('_', '-')} must be an absolute path, not {value!r}"
            )
    if config.log_driver not in ("json-file", "none"):
        raise InvalidArgument(
            f"log driver {config.log_driver!r} is not supported: json-file or none"
        )
    if not isinstance(config.log_opts, dict) or not all(
        isinstance(v, str) for v in config.log_opts.values()
    ):
        raise InvalidArgument("log-opts must be an object of strings")
    for name in ("registry_mirrors", "insecure_registries"):
        value = getattr(config, name)
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise InvalidArgument(f"{name.replace('_', '-')} must be a list of strings")
    if not isinstance(config.standby_containers, bool):
        raise InvalidArgument("standby-containers must be true or false")
    if config.log_level not in _LOG_LEVELS:
        raise InvalidArgument(
            f"invalid log level {config.log_level!r}: one of {', '.join(_LOG_LEVELS)}"
        )
