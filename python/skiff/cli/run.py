"""``skiff run`` and ``skiff create``: docker's flags, turned into a create request.

``run`` sends the requests in the docker CLI's order, so that no output is lost and
the exit status is the container's: create (pulling the image on a 404 unless
``--pull never``), attach (hijacked), wait (``next-exit``, or ``removed`` with
``--rm``), start, then resize with a tty; attach and wait are in flight together, each
on its connection, and start goes once the daemon has answered both. Exit codes: the
container's; 125 when the engine fails; 126/127 when the command cannot be invoked / is
not found (read from the start error's text, as docker does).

The module is on the CLI's hot path: nothing heavy at import (no ``json``, ``contextlib``
or ``signal``; see :mod:`skiff.client.fastjson`).
"""

from __future__ import annotations

import os
import sys

from skiff.cli.app import App, StatusError
from skiff.cli.fastpath import Opt, parse
from skiff.cli.options import (
    parse_env,
    parse_healthcheck,
    parse_mount,
    parse_ports,
    parse_restart,
    parse_ulimit,
    parse_volume,
)
from skiff.errors import InvalidArgument, NotFound, SkiffError

TYPE_CHECKING = False  # typing itself costs the CLI's start ~10 ms
if TYPE_CHECKING:
    from typing import Any

#: ``-h`` is --hostname here, as in docker.
SETTINGS = {"help_option_names": ["--help"], "allow_interspersed_args": False}


#: The flags ``run`` and ``create`` share (docker's names and short forms): one table for
#: click and for the fast path.
CREATE_OPTIONS = [
    Opt(
        "-a",
        "--attach",
        dest="attach_streams",
        kind="multi",
        metavar="STREAM",
        choices=["stdin", "stdout", "stderr"],
        help="Attach to STDIN, STDOUT or STDERR.",
    ),
    Opt("--add-host", kind="multi", metavar="HOST:IP", help="Add a custom host-to-IP mapping."),
    Opt("--cap-add", kind="multi", help="Add Linux capabilities."),
    Opt("--cap-drop", kind="multi", help="Drop Linux capabilities."),
    Opt("--cgroup-parent", help="Optional parent cgroup for the container."),
    Opt("--cidfile", help="Write the container ID to the file."),
    Opt("--cpu-period", convert=int, help="Limit CPU CFS period."),
    Opt("--cpu-quota", convert=int, help="Limit CPU CFS quota."),
    Opt("-c", "--cpu-shares", convert=int, help="CPU shares (relative weight)."),
    Opt("--cpus", convert=float, help="Number of CPUs."),
    Opt("--cpuset-cpus", help="CPUs in which to allow execution (0-3, 0,1)."),
    Opt("--dns", kind="multi", help="Set custom DNS servers."),
    Opt("--dns-search", kind="multi", help="Set custom DNS search domains."),
    Opt("--dns-option", kind="multi", help="Set DNS options."),
    Opt("--entrypoint", help="Overwrite the default ENTRYPOINT of the image."),
    Opt("-e", "--env", kind="multi", metavar="KEY=VALUE", help="Set environment variables."),
    Opt(
        "--env-file",
        kind="multi",
        help="Read in a file of environment variables.",
    ),
    Opt("--expose", kind="multi", help="Expose a port or a range of ports."),
    Opt("--group-add", kind="multi", help="Add additional groups to join."),
    Opt("--health-cmd", help="Command to run to check health."),
    Opt("--health-interval", help="Time between running the check (ms|s|m|h)."),
    Opt("--health-retries", convert=int, help="Consecutive failures needed to report unhealthy."),
    Opt("--health-start-interval", help="Time between checks during the start period."),
    Opt("--health-start-period", help="Start period for the container to initialize."),
    Opt("--health-timeout", help="Maximum time to allow one check to run."),
    Opt("--no-healthcheck", kind="flag", help="Disable any container-specified HEALTHCHECK."),
    Opt("-h", "--hostname", help="Container host name."),
    Opt(
        "--init",
        kind="flag",
        help="Run an init inside the container that forwards signals and reaps processes.",
    ),
    Opt("-i", "--interactive", kind="flag", help="Keep STDIN open even if not attached."),
    Opt("--ipc", help="IPC mode to use."),
    Opt("-l", "--label", kind="multi", help="Set meta data on a container."),
    Opt(
        "--label-file",
        kind="multi",
        help="Read in a line delimited file of labels.",
    ),
    Opt("--log-driver", help="Logging driver for the container."),
    Opt("--log-opt", kind="multi", help="Log driver options."),
    Opt("-m", "--memory", help="Memory limit (e.g. 512m)."),
    Opt("--memory-reservation", help="Memory soft limit."),
    Opt("--memory-swap", help="Swap limit equal to memory plus swap: -1 for unlimited."),
    Opt("--mount", kind="multi", help="Attach a filesystem mount to the container."),
    Opt("--name", help="Assign a name to the container."),
    Opt("--network", "--net", dest="network", help="Connect a container to a network."),
    Opt("--oom-score-adj", convert=int, help="Tune host's OOM preferences (-1000 to 1000)."),
    Opt("--pid", help="PID namespace to use."),
    Opt("--pids-limit", convert=int, help="Tune container pids limit (-1 for unlimited)."),
    Opt("--platform", help="Set platform if server is multi-platform capable."),
    Opt("--privileged", kind="flag", help="Give extended privileges to this container."),
    Opt("-p", "--publish", kind="multi", help="Publish a container's port(s) to the host."),
    Opt("-P", "--publish-all", kind="flag", help="Publish all exposed ports to random ports."),
    Opt(
        "--pull",
        choices=["always", "missing", "never"],
        default="missing",
        help="Pull image before running.",
    ),
    Opt("-q", "--quiet", kind="flag", help="Suppress the pull output."),
    Opt("--read-only", kind="flag", help="Mount the container's root filesystem as read only."),
    Opt(
        "--restart",
        default="no",
        help="Restart policy to apply when a container exits.",
    ),
    Opt(
        "--rm",
        dest="auto_remove",
        kind="flag",
        help="Automatically remove the container when it exits.",
    ),
    Opt("--runtime", help="Runtime to use for this container."),
    Opt("--security-opt", kind="multi", help="Security options."),
    Opt("--shm-size", help="Size of /dev/shm."),
    Opt("--stop-signal", help="Signal to stop the container."),
    Opt("--stop-timeout", convert=int, help="Timeout (in seconds) to stop a container."),
    Opt("--sysctl", kind="multi", help="Sysctl options."),
    Opt("-t", "--tty", kind="flag", help="Allocate a pseudo-TTY."),
    Opt("--tmpfs", kind="multi", help="Mount a tmpfs directory."),
    Opt("--ulimit", kind="multi", help="Ulimit options."),
    Opt("-u", "--user", help="Username or UID (format: <name|uid>[:<group|gid>])."),
    Opt("--userns", help="User namespace to use."),
    Opt("--uts", help="UTS namespace to use."),
    Opt("-v", "--volume", kind="multi", help="Bind mount a volume."),
    Opt("-w", "--workdir", help="Working directory inside the container."),
]

#: ``run``'s own flags.
RUN_OPTIONS = [
    Opt("-d", "--detach", kind="flag", help="Run container in background and print container ID."),
    Opt("--detach-keys", help="Override the key sequence for detaching a container."),
    Opt("--sig-proxy", kind="bool", default=True, help="Proxy received signals to the process."),
]


def _click_command(name: str, options: list[Opt], fn: Any, doc: str) -> Any:
    """A click command for ``fn(app, image, command, **flags)`` from an option table."""
    import click

    def callback(app: App, **values: Any) -> None:
        fn(app, **values)

    f: Any = callback
    f = click.argument("command", nargs=-1, type=click.UNPROCESSED)(f)
    f = click.argument("image")(f)
    for opt in reversed(options):
        f = opt.click_option()(f)
    return click.command(name, context_settings=SETTINGS, help=doc)(click.pass_obj(f))


def __getattr__(name: str) -> Any:
    if name == "run_command":
        cmd = _click_command(
            "run",
            RUN_OPTIONS + CREATE_OPTIONS,
            run,
            "Create and run a new container from an image.",
        )
    elif name == "create_command":
        cmd = _click_command("create", CREATE_OPTIONS, create, "Create a new container.")
    else:
        raise AttributeError(name)
    globals()[name] = cmd
    return cmd


def fast_args(args: list[str]) -> Any:
    """``run`` parsed without click (raises GiveUp when click must parse it)."""
    values, found = parse(RUN_OPTIONS + CREATE_OPTIONS, args, 1, rest=True)
    values["image"], values["command"] = found[0], tuple(found[1:])
    return lambda app: run(app, **values)


def build_config(o: dict[str, Any], detach: bool) -> tuple[dict[str, Any], dict[str, Any]]:
    """(create body, query parameters) from the parsed flags."""
    if o["auto_remove"] and o["restart"] not in ("", "no"):
        raise InvalidArgument("Conflicting options: --restart and --rm")
    attach = {s.lower() for s in o["attach_streams"]}
    if detach and attach:
        raise InvalidArgument("Conflicting options: -a and -d")
    if not detach and not attach:
        attach = {"stdout", "stderr"} | ({"stdin"} if o["interactive"] else set())
    if detach:
        attach = set()
    exposed: dict[str, dict[str, Any]] = {}
    bindings: dict[str, list[dict[str, str]]] = {}
    parse_ports(o["publish"], o["expose"], exposed, bindings)
    binds: list[str] = []
    volumes: dict[str, dict[str, Any]] = {}
    for spec in o["volume"]:
        parse_volume(spec, binds, volumes)
    labels: dict[str, str] = {}
    for path in o["label_file"]:
        for line in _read_lines(path):
            k, _, v = line.partition("=")
            labels[k] = v
    for item in o["label"]:
        k, _, v = item.partition("=")
        labels[k] = v
    env = parse_env(o["env_file"], o["env"])
    tmpfs = {}
    for item in o["tmpfs"]:
        dest, _, options = item.partition(":")
        tmpfs[dest] = options
    sysctls = {}
    for item in o["sysctl"]:
        k, eq, v = item.partition("=")
        if not eq:
            raise InvalidArgument(f"invalid sysctl {item!r}: expected KEY=VALUE")
        sysctls[k] = v
    log_opts = {}
    for item in o["log_opt"]:
        k, _, v = item.partition("=")
        log_opts[k] = v
    entrypoint: list[str] | None = None
    if o["entrypoint"] is not None:
        entrypoint = [o["entrypoint"]]
    config: dict[str, Any] = {
        "Hostname": o["hostname"] or "",
        "User": o["user"] or "",
        "AttachStdin": "stdin" in attach,
        "AttachStdout": "stdout" in attach,
        "AttachStderr": "stderr" in attach,
        "Tty": o["tty"],
        "OpenStdin": o["interactive"],
        "StdinOnce": o["interactive"] and "stdin" in attach,
        "Env": env,
        "Cmd": list(o["command"]) or None,
        "Image": o["image"],
        "WorkingDir": o["workdir"] or "",
        "Entrypoint": entrypoint,
        "Labels": labels,
    }
    if exposed:
        config["ExposedPorts"] = exposed
    if volumes:
        config["Volumes"] = volumes
    if o["stop_signal"]:
        config["StopSignal"] = o["stop_signal"]
    if o["stop_timeout"] is not None:
        config["StopTimeout"] = o["stop_timeout"]
    health = parse_healthcheck(o)
    if health is not None:
        config["Healthcheck"] = health
    host: dict[str, Any] = {
        "Binds": binds or None,
        "NetworkMode": o["network"] or "default",
        "PortBindings": bindings,
        "RestartPolicy": parse_restart(o["restart"]),
        "AutoRemove": o["auto_remove"],
        "CapAdd": list(o["cap_add"]) or None,
        "CapDrop": list(o["cap_drop"]) or None,
        "Dns": list(o["dns"]),
        "DnsOptions": list(o["dns_option"]),
        "DnsSearch": list(o["dns_search"]),
        "ExtraHosts": [_host_entry(h) for h in o["add_host"]] or None,
        "GroupAdd": list(o["group_add"]) or None,
        "Privileged": o["privileged"],
        "PublishAllPorts": o["publish_all"],
        "ReadonlyRootfs": o["read_only"],
        "SecurityOpt": [_security_opt(s) for s in o["security_opt"]] or None,
        "Mounts": [parse_mount(m) for m in o["mount"]] or None,
        "Ulimits": [parse_ulimit(u) for u in o["ulimit"]] or None,
        "Init": True if o["init"] else None,
    }
    if tmpfs:
        host["Tmpfs"] = tmpfs
    if sysctls:
        host["Sysctls"] = sysctls
    if o["log_driver"] or log_opts:
        host["LogConfig"] = {"Type": o["log_driver"] or "", "Config": log_opts}
    if o["memory"]:
        host["Memory"] = _ram_in_bytes(o["memory"])
    if o["memory_reservation"]:
        host["MemoryReservation"] = _ram_in_bytes(o["memory_reservation"])
    if o["memory_swap"]:
        host["MemorySwap"] = -1 if o["memory_swap"] == "-1" else _ram_in_bytes(o["memory_swap"])
    if o["cpus"] is not None:
        host["NanoCpus"] = round(o["cpus"] * 1e9)
    for flag, key in (
        ("cpu_shares", "CpuShares"),
        ("cpu_quota", "CpuQuota"),
        ("cpu_period", "CpuPeriod"),
        ("pids_limit", "PidsLimit"),
        ("oom_score_adj", "OomScoreAdj"),
    ):
        if o[flag] is not None:
            host[key] = o[flag]
    for flag, key in (
        ("cpuset_cpus", "CpusetCpus"),
        ("cgroup_parent", "CgroupParent"),
        ("ipc", "IpcMode"),
        ("pid", "PidMode"),
        ("uts", "UTSMode"),
        ("userns", "UsernsMode"),
        ("runtime", "Runtime"),
    ):
        if o[flag]:
            host[key] = o[flag]
    if o["shm_size"]:
        host["ShmSize"] = _ram_in_bytes(o["shm_size"])
    config["HostConfig"] = host
    params: dict[str, Any] = {}
    if o["name"]:
        params["name"] = o["name"]
    if o["platform"]:
        params["platform"] = o["platform"]
    return config, params


def _ram_in_bytes(text: str) -> int:
    from skiff.cli.units import ram_in_bytes  # only when a size is given: units is not free

    return ram_in_bytes(text)


def _read_lines(path: str) -> list[str]:
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as err:
        raise InvalidArgument(f"cannot read {path}: {err.strerror}") from None
    return [
        ln.strip() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")
    ]


def _host_entry(text: str) -> str:
    # docker 28 takes host=ip as well as host:ip; the API wants host:ip.
    if "=" in text:
        name, _, ip = text.partition("=")
        return f"{name}:{ip}"
    if ":" not in text:
        raise InvalidArgument(f"invalid argument {text!r} for --add-host: expected HOST:IP")
    return text


def _security_opt(text: str) -> str:
    # docker sends a seccomp profile's contents, not its path.
    key, sep, value = text.partition("=")
    if key == "seccomp" and sep and value != "unconfined":
        from skiff.client.fastjson import dumps, loads

        try:
            with open(value, "rb") as f:
                profile = loads(f.read())
        except (OSError, ValueError) as err:
            raise InvalidArgument(f"opening seccomp profile ({value}) failed: {err}") from None
        return "seccomp=" + dumps(profile)
    return text


def create_container(
    app: App, config: dict[str, Any], params: dict[str, Any], pull: str, quiet: bool
) -> str:
    """Creates the container, pulling its image first as ``--pull`` says."""
    image = config["Image"]
    if pull == "always":
        from skiff.cli.images import pull_image

        pull_image(app, image, params.get("platform"), quiet=quiet, out=sys.stderr, say_tag=False)
    from skiff.client.fastjson import dumps

    body = dumps(config).encode()
    try:
        resp = app.client.request("POST", "/containers/create", params=params, body=body)
    except NotFound as err:
        if pull != "missing" or "image" not in err.message.lower():
            raise
        sys.stderr.write(f"Unable to find image '{_display_ref(image)}' locally\n")
        from skiff.cli.images import pull_image

        pull_image(app, image, params.get("platform"), quiet=quiet, out=sys.stderr, say_tag=False)
        resp = app.client.request("POST", "/containers/create", params=params, body=body)
    answer = resp.json() or {}
    for warning in answer.get("Warnings") or []:
        sys.stderr.write(f"WARNING: {warning}\n")
    return str(answer["Id"])


def _display_ref(image: str) -> str:
    last = image.rsplit("/", 1)[-1]
    if ":" in last or "@" in image:
        return image
    return f"{image}:latest"


def _check_cidfile(path: str | None) -> None:
    if path and os.path.exists(path):
        raise InvalidArgument(
            f"container ID file found, make sure the other container isn't running or delete {path}"
        )


def _write_cidfile(path: str | None, cid: str) -> None:
    if not path:
        return
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        raise InvalidArgument(
            f"container ID file found, make sure the other container isn't running or delete {path}"
        ) from None
    with os.fdopen(fd, "w") as f:
        f.write(cid)


def create(app: App, /, **o: Any) -> None:
    """Create a new container."""
    _check_cidfile(o["cidfile"])
    config, params = build_config(o, detach=False)
    cid = create_container(app, config, params, o["pull"], o["quiet"])
    _write_cidfile(o["cidfile"], cid)
    sys.stdout.write(cid + "\n")


def run(app: App, /, detach: bool, detach_keys: str | None, sig_proxy: bool, **o: Any) -> None:
    """Create and run a new container from an image."""
    from skiff.cli import streams

    _check_cidfile(o["cidfile"])
    config, params = build_config(o, detach)
    tty = bool(o["tty"])
    if tty and config["AttachStdin"] and not os.isatty(0):
        raise InvalidArgument("the input device is not a TTY")
    keys = streams.parse_detach_keys(detach_keys)
    try:
        cid = create_container(app, config, params, o["pull"], o["quiet"])
    except SkiffError as err:
        # docker run: every failure before the container runs is the engine's (125).
        prefix = "Error response from daemon: " if err.from_daemon else ""
        raise StatusError(125, f"skiff: {prefix}{err.message}") from None
    _write_cidfile(o["cidfile"], cid)
    client = app.client
    if detach:
        _start(app, cid, None)
        sys.stdout.write(cid + "\n")
        return
    # Attach and wait in flight together, each on its connection; start only once the
    # daemon has answered both, so that no output is lost and the exit is seen.
    sent: list[Any] = []  # closed (connections and all) if any of this fails
    try:
        attaching = None
        if config["AttachStdin"] or config["AttachStdout"] or config["AttachStderr"]:
            attaching = client.send_hijack(
                f"/containers/{cid}/attach",
                stream=True,
                stdin=config["AttachStdin"],
                stdout=config["AttachStdout"],
                stderr=config["AttachStderr"],
            )
            sent.append(attaching)
        condition = "removed" if o["auto_remove"] else "next-exit"
        wait = client.send_stream(
            "POST", f"/containers/{cid}/wait", params={"condition": condition}, timeout=None
        )
        sent.append(wait)
        hijacked = attaching.hijacked() if attaching is not None else None
        waiting = wait.stream()
    except BaseException:
        for request in sent:
            request.close()
        raise
    session = Session(app, cid, hijacked, tty, keys, resize_path=f"/containers/{cid}/resize")
    _start(app, cid, session, waiting if o["auto_remove"] else None)
    run_attached(session, waiting, config["AttachStdin"], sig_proxy)


def _start(app: App, cid: str, session: Session | None, removal: Any = None) -> None:
    try:
        app.client.request("POST", f"/containers/{cid}/start")
    except SkiffError as err:
        if session is not None:
            session.close()
        if removal is not None:
            removal.close()
        raise StatusError(
            start_error_code(err.message), f"skiff: Error response from daemon: {err.message}"
        ) from None


def start_error_code(message: str) -> int:
    """docker's exit code for a failed start, from the error's words."""
    if any(s in message for s in ("executable file not found", "no such file or directory")):
        return 127
    if "permission denied" in message or "is a directory" in message:
        return 126
    return 125


def attach_session(
    app: App, info: dict[str, Any], want_stdin: bool, detach_keys: str | None
) -> tuple[Session, bool]:
    """attach and start -a: the container's streams (``info`` is its inspect answer),
    hijacked, in a Session; and whether its stdin is carried too."""
    from skiff.cli import streams

    cid = info["Id"]
    config = info.get("Config") or {}
    tty = bool(config.get("Tty"))
    stdin = want_stdin and bool(config.get("OpenStdin"))
    keys = streams.parse_detach_keys(detach_keys)
    hijacked = app.client.hijack(
        f"/containers/{cid}/attach", stream=True, stdin=stdin, stdout=True, stderr=True
    )
    session = Session(app, cid, hijacked, tty, keys, resize_path=f"/containers/{cid}/resize")
    return session, stdin


def run_attached(session: Session, waiting: Any, stdin: bool, sig_proxy: bool) -> None:
    """Carries the session's streams, then exits with the container's status (from the
    ``wait`` answer ``waiting``) unless we detached."""
    session.run(stdin=stdin, sig_proxy=sig_proxy and not session.tty)
    if session.detached:
        waiting.close()
        return
    status = _wait_status(waiting)
    if status != 0:
        raise StatusError(status)


def _wait_status(waiting: Any) -> int:
    try:
        for answer in waiting.json_lines():
            error = (answer.get("Error") or {}).get("Message") if answer.get("Error") else None
            if error:
                sys.stderr.write(f"skiff: {error}\n")
            return int(answer.get("StatusCode", 0))
    finally:
        waiting.close()
    return 125


class Session:
    """The client side of one attached container or exec: output to our stdout and
    stderr, stdin to the container, a raw terminal and its size with a tty."""

    def __init__(
        self, app: App, target: str, hijacked: Any, tty: bool, keys: bytes, resize_path: str
    ) -> None:
        self.app = app
        self.target = target
        self.hijacked = hijacked
        self.tty = tty
        self.keys = keys
        self.resize_path = resize_path
        self.detached = False

    def close(self) -> None:
        if self.hijacked is not None:
            self.hijacked.close()

    def resize(self, rows: int, cols: int) -> None:
        self.app.client.request("POST", self.resize_path, params={"h": rows, "w": cols})

    def _detach(self) -> None:
        self.detached = True
        self.hijacked.shutdown()

    def run(self, stdin: bool, sig_proxy: bool = False) -> int:
        """Carries the streams until the container's output ends."""

        from skiff.cli import streams

        if self.hijacked is None:
            return 0
        # Entered in this order, left in the reverse (an ExitStack without contextlib).
        contexts: list[Any] = []
        if self.tty and os.isatty(1):
            contexts.append(streams.forward_resizes(self.resize))
        if self.tty and stdin and os.isatty(0):
            contexts.append(streams.RawTerminal(0))
        if sig_proxy:
            contexts.append(streams.SignalProxy(self._kill))
        entered: list[Any] = []
        try:
            for context in contexts:
                context.__enter__()
                entered.append(context)
            if stdin:
                streams.StdinPump(
                    self.hijacked, 0, self.keys if self.tty else b"", self._detach
                ).start()
            try:
                streams.copy_output(self.hijacked.read1, self.hijacked.multiplexed and not self.tty)
            finally:
                self.hijacked.close()
        finally:
            for context in reversed(entered):
                context.__exit__(None, None, None)
        return 0

    def _kill(self, signal_name: str) -> None:
        """Sends a signal we received to the container (``--sig-proxy``)."""
        try:
            self.app.client.request(
                "POST", f"/containers/{self.target}/kill", params={"signal": signal_name}
            )
        except SkiffError:
            return
