"""What the image routes call: pull and push with the client's credentials, list with
Docker's filters, delete with dockerd's conflict rules, prune, tag, save/load, import
and commit with Dockerfile-style config changes.

The store itself (``skiff.image``) and the registry client (``skiff.registry``) do the
work; this module adds the daemon's side of it: which references a request names,
which containers keep an image, the events, and the garbage collection that follows a
delete.

Credentials: the client sends them per request (``X-Registry-Auth``, base64url JSON);
the daemon never reads a ``config.json`` of its own. For a pull or push they are
written to a private, short-lived ``config.json`` under the exec root (0600 in a 0700
directory) that the registry client reads, and removed when the operation ends.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import logging
import os
import re
import shlex
import shutil
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from skiff.errors import Conflict, Forbidden, InvalidArgument, NotFound, Unauthorized
from skiff.image import manifest as mf
from skiff.image.reference import (
    DEFAULT_DOMAIN,
    Reference,
    is_image_id,
    looks_like_id,
    parse_normalized,
    parse_normalized_named,
)
from skiff.timefmt import parse_rfc3339
from skiff.version import parse_api_version

if TYPE_CHECKING:
    from skiff.daemon.state import Daemon
    from skiff.engine.container import Container
    from skiff.image.metadata import ImageRecord
    from skiff.image.service import ImageService
    from skiff.registry.progress import ProgressFn

log = logging.getLogger("skiff.engine.images")

IMAGE_FILTERS: Final = frozenset(["dangling", "label", "before", "since", "reference", "until"])
PRUNE_FILTERS: Final = frozenset(["dangling", "label", "label!", "until"])
#: Dockerfile instructions ``commit --change`` and ``import --change`` accept (dockerd's).
CHANGE_COMMANDS: Final = frozenset(
    [
        "CMD",
        "ENTRYPOINT",
        "ENV",
        "EXPOSE",
        "HEALTHCHECK",
        "LABEL",
        "ONBUILD",
        "STOPSIGNAL",
        "USER",
        "VOLUME",
        "WORKDIR",
    ]
)
DOCKERFILE_COMMANDS: Final = CHANGE_COMMANDS | {
    "ADD",
    "ARG",
    "COPY",
    "FROM",
    "MAINTAINER",
    "RUN",
    "SHELL",
}
#: The image config keys a commit keeps from a container's Config.
IMAGE_CONFIG_KEYS: Final = (
    "User",
    "ExposedPorts",
    "Env",
    "Entrypoint",
    "Cmd",
    "Volumes",
    "WorkingDir",
    "Labels",
    "StopSignal",
    "Healthcheck",
    "OnBuild",
    "Shell",
    "ArgsEscaped",
)
_TAGS_LIMIT: Final = 16 << 20


# --------------------------------------------------------------------------- helpers


def familiar(ref_text: str) -> str:
    """A stored reference (``docker.io/library/busybox:latest``, ``...@sha256:``) as
    Docker shows it."""
    return parse_normalized_named(ref_text).familiar()


def parse_bool_filter(name: str, values: list[str]) -> bool:
    """A boolean filter (``dangling=true``) as dockerd reads it."""
    seen = {v.lower() for v in values}
    if seen <= {"true", "1"}:
        return True
    if seen <= {"false", "0"}:
        return False
    raise InvalidArgument(f"invalid filter '{name}={values[0]}'")


def parse_until(text: str) -> float:
    """``until`` of a prune: unix seconds, RFC 3339, or a duration before now (``24h``)."""
    import time

    if re.fullmatch(r"-?\d+(\.\d+)?", text):
        return float(text)
    if re.fullmatch(r"(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+", text):
        return time.time() - go_duration(text) / 1e9
    seconds = parse_rfc3339(text if ("Z" in text or "+" in text[10:]) else text + "Z", 0.0)
    if seconds == 0.0:
        raise InvalidArgument(f"invalid filter 'until={text}'")
    return seconds


_DURATION_UNITS = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}


def go_duration(text: str) -> int:
    """A Go duration (``1m30s``, ``500ms``) in nanoseconds."""
    parts = re.findall(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise InvalidArgument(f"time: invalid duration {text!r}")
    return int(sum(float(n) * _DURATION_UNITS[u] for n, u in parts))


def label_match(labels: dict[str, str], wanted: list[str], negate: bool = False) -> bool:
    """``label=key`` / ``label=key=value``: every one holds (``label!``: none holds)."""
    for item in wanted:
        key, eq, value = item.partition("=")
        hit = key in labels and (not eq or labels[key] == value)
        if hit == negate:
            return False
    return True


def _glob_regex(pattern: str) -> re.Pattern[str]:
    """Go's ``path.Match`` syntax as a regex: ``*`` and ``?`` stop at ``/``."""
    out, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "\\" and i + 1 < len(pattern):
            i += 1
            out.append(re.escape(pattern[i]))
        elif c == "[":
            end = pattern.find("]", i + 1)
            if end < 0:
                raise InvalidArgument(
                    f"invalid reference filter {pattern!r}: syntax error in pattern"
                )
            body = pattern[i + 1 : end]
            if body.startswith("^"):
                body = "^" + body[1:].replace("\\", "\\\\")
            else:
                body = body.replace("\\", "\\\\")
            out.append(f"(?!/)[{body}]")
            i = end
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("".join(out) + r"\Z")


def reference_match(pattern: str, ref: Reference) -> bool:
    """distribution's ``FamiliarMatch``: the pattern against the familiar string, then
    against the familiar name alone."""
    rx = _glob_regex(pattern)
    return bool(rx.match(ref.familiar()) or rx.match(ref.familiar_name))


def decode_registry_auth(value: str | None) -> dict[str, str]:
    """``X-Registry-Auth``: base64url (or standard base64) JSON of an AuthConfig. As
    dockerd does, an undecodable header counts as no credentials."""
    if not value or not value.strip():
        return {}
    text = value.strip()
    text += "=" * (-len(text) % 4)
    try:
        raw = base64.urlsafe_b64decode(text)
        obj = json.loads(raw)
    except (binascii.Error, ValueError):
        return {}
    if not isinstance(obj, dict):
        return {}
    return {str(k).lower(): str(v) for k, v in obj.items() if isinstance(v, str) and v}


def credentials_entry(auth: dict[str, str]) -> dict[str, str] | None:
    """The ``auths`` entry of a docker config.json for an AuthConfig, or None."""
    entry: dict[str, str] = {}
    if auth.get("identitytoken"):
        entry["identitytoken"] = auth["identitytoken"]
    if auth.get("username") or auth.get("password"):
        entry["username"] = auth.get("username", "")
        entry["password"] = auth.get("password", "")
    elif auth.get("auth"):
        entry["auth"] = auth["auth"]
    return entry or None


# --------------------------------------------------------------------------- changes


@dataclass
class _Change:
    command: str  # upper case
    rest: str
    line: int


def parse_changes(changes: list[str], allowed: frozenset[str] = CHANGE_COMMANDS) -> list[_Change]:
    """Dockerfile-like lines (``--change`` values, each may hold several lines):
    continuation backslashes joined, comments and blank lines skipped."""
    text = "\n".join(changes)
    out: list[_Change] = []
    pending = ""
    start = 0
    for n, raw in enumerate(text.split("\n"), 1):
        line = raw.rstrip("\r")
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if not pending:
            start = n
        if line.endswith("\\"):
            pending += line[:-1]
            continue
        full = (pending + line).strip()
        pending = ""
        if not full:
            continue
        word, _, rest = full.partition(" ")
        if "\t" in word:
            word, _, more = word.partition("\t")
            rest = more + " " + rest
        command = word.upper()
        if command not in DOCKERFILE_COMMANDS:
            raise InvalidArgument(
                f"dockerfile parse error on line {start}: unknown instruction: {word}"
            )
        if command not in allowed:
            raise InvalidArgument(f"{command} is not a valid change command")
        out.append(_Change(command, rest.strip(), start))
    if pending.strip():
        word, _, rest = pending.strip().partition(" ")
        if word.upper() not in allowed:
            raise InvalidArgument(f"{word.upper()} is not a valid change command")
        out.append(_Change(word.upper(), rest.strip(), start))
    return out


def _json_list(text: str) -> list[str] | None:
    """The exec (JSON array) form of an instruction's arguments, or None."""
    if not text.startswith("["):
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    return None


def _key_values(change: _Change) -> list[tuple[str, str]]:
    """``ENV``/``LABEL`` arguments: ``k=v k2="v 2"``, or the legacy ``k value words``."""
    rest = change.rest
    if not rest:
        raise InvalidArgument(f"{change.command} requires at least one argument")
    first = rest.split(None, 1)[0]
    if "=" not in first:
        key, _, value = rest.partition(" ")
        if not value.strip():
            raise InvalidArgument(f"{change.command} must have two arguments")
        return [(key, value.strip())]
    try:
        words = shlex.split(rest, posix=True)
    except ValueError as err:
        raise InvalidArgument(f"{change.command}: {err}") from None
    pairs = []
    for word in words:
        key, eq, value = word.partition("=")
        if not eq:
            raise InvalidArgument(
                f'Syntax error - can\'t find = in "{word}". Must be of the form: name=value'
            )
        if not key:
            raise InvalidArgument(f"{change.command} names can not be blank")
        pairs.append((key, value))
    return pairs


def _ports(words: list[str]) -> list[str]:
    out = []
    for word in words:
        port, _, proto = word.partition("/")
        proto = (proto or "tcp").lower()
        if proto not in ("tcp", "udp", "sctp"):
            raise InvalidArgument(f"invalid proto: {proto}")
        low, dash, high = port.partition("-")
        if not low.isdigit() or (dash and not high.isdigit()):
            raise InvalidArgument(f"invalid containerPort: {port}")
        for p in range(int(low), int(high if dash else low) + 1):
            out.append(f"{p}/{proto}")
    return out


def _healthcheck(change: _Change) -> dict[str, Any]:
    words = change.rest.split()
    if [w.upper() for w in words] == ["NONE"]:
        return {"Test": ["NONE"]}
    health: dict[str, Any] = {}
    rest = change.rest
    while rest.startswith("--"):
        flag, _, rest = rest.partition(" ")
        rest = rest.lstrip()
        name, eq, value = flag[2:].partition("=")
        if not eq:
            raise InvalidArgument(f"HEALTHCHECK: flag --{name} needs a value")
        keys = {
            "interval": "Interval",
            "timeout": "Timeout",
            "start-period": "StartPeriod",
            "start-interval": "StartInterval",
        }
        if name in keys:
            health[keys[name]] = go_duration(value)
        elif name == "retries":
            if not value.isdigit():
                raise InvalidArgument(f"HEALTHCHECK: invalid retries {value!r}")
            health["Retries"] = int(value)
        else:
            raise InvalidArgument(f"HEALTHCHECK: unknown flag --{name}")
    word, _, args = rest.partition(" ")
    if word.upper() != "CMD":
        raise InvalidArgument("HEALTHCHECK: unknown type, use CMD or NONE")
    args = args.strip()
    exec_form = _json_list(args)
    if exec_form is not None:
        health["Test"] = ["CMD", *exec_form]
    elif args:
        health["Test"] = ["CMD-SHELL", args]
    else:
        raise InvalidArgument("HEALTHCHECK: missing command after HEALTHCHECK CMD")
    return health


def apply_changes(config: dict[str, Any], changes: list[str]) -> dict[str, Any]:
    """Applies ``changes`` to a Docker ``Config`` (a copy is returned), the way the
    builder would: shell forms become ``/bin/sh -c`` (or the config's Shell), an
    ENTRYPOINT resets a CMD not given in the same changes, a relative WORKDIR goes on
    from the previous one."""
    cfg: dict[str, Any] = json.loads(json.dumps(config))
    cmd_set = False
    for change in parse_changes(changes):
        rest, command = change.rest, change.command
        shell = list(cfg.get("Shell") or ["/bin/sh", "-c"])
        if command in ("CMD", "ENTRYPOINT"):
            exec_form = _json_list(rest)
            argv = exec_form if exec_form is not None else [*shell, rest] if rest else []
            if command == "CMD":
                cfg["Cmd"] = argv
                cmd_set = True
            else:
                cfg["Entrypoint"] = argv
                if not cmd_set:
                    cfg["Cmd"] = None
        elif command == "ENV":
            env = list(cfg.get("Env") or [])
            for key, value in _key_values(change):
                env = [e for e in env if e.partition("=")[0] != key]
                env.append(f"{key}={value}")
            cfg["Env"] = env
        elif command == "LABEL":
            labels = dict(cfg.get("Labels") or {})
            labels.update(_key_values(change))
            cfg["Labels"] = labels
        elif command == "EXPOSE":
            ports = dict(cfg.get("ExposedPorts") or {})
            for p in _ports(rest.split()):
                ports[p] = {}
            cfg["ExposedPorts"] = ports
        elif command == "VOLUME":
            exec_form = _json_list(rest)
            paths = exec_form if exec_form is not None else rest.split()
            if not paths or any(not p for p in paths):
                raise InvalidArgument("VOLUME specified can not be an empty string")
            volumes = dict(cfg.get("Volumes") or {})
            volumes.update({p: {} for p in paths})
            cfg["Volumes"] = volumes
        elif command == "WORKDIR":
            if not rest:
                raise InvalidArgument("WORKDIR requires exactly one argument")
            base = cfg.get("WorkingDir") or "/"
            cfg["WorkingDir"] = os.path.normpath(os.path.join(base, rest))
        elif command == "USER":
            if not rest:
                raise InvalidArgument("USER requires exactly one argument")
            cfg["User"] = rest
        elif command == "STOPSIGNAL":
            if not rest:
                raise InvalidArgument("STOPSIGNAL requires exactly one argument")
            cfg["StopSignal"] = rest
        elif command == "ONBUILD":
            cfg["OnBuild"] = [*(cfg.get("OnBuild") or []), rest]
        elif command == "HEALTHCHECK":
            cfg["Healthcheck"] = _healthcheck(change)
    return cfg


def merge_config(user: dict[str, Any], container: dict[str, Any]) -> dict[str, Any]:
    """dockerd's commit merge: what ``user`` (the request's config with the changes
    applied) leaves unset comes from the container's config."""
    out = dict(user)
    if not out.get("User"):
        out["User"] = container.get("User") or ""
    ports = dict(out.get("ExposedPorts") or {})
    for port, value in (container.get("ExposedPorts") or {}).items():
        ports.setdefault(port, value)
    out["ExposedPorts"] = ports
    env = list(out.get("Env") or [])
    keys = {e.partition("=")[0] for e in env}
    for item in container.get("Env") or []:
        if item.partition("=")[0] not in keys:
            env.append(item)
    out["Env"] = env
    labels = dict(out.get("Labels") or {})
    for key, value in (container.get("Labels") or {}).items():
        labels.setdefault(key, value)
    out["Labels"] = labels
    if not out.get("Entrypoint") and not out.get("Cmd"):
        out["Cmd"] = container.get("Cmd")
        out["Entrypoint"] = container.get("Entrypoint")
    if container.get("Healthcheck"):
        health = dict(out.get("Healthcheck") or {})
        for key, value in container["Healthcheck"].items():
            if not health.get(key):
                health[key] = value
        out["Healthcheck"] = health
    if not out.get("WorkingDir"):
        out["WorkingDir"] = container.get("WorkingDir") or ""
    volumes = dict(out.get("Volumes") or {})
    volumes.update(container.get("Volumes") or {})
    out["Volumes"] = volumes
    if not out.get("StopSignal"):
        out["StopSignal"] = container.get("StopSignal") or ""
    return out


def image_config(config: dict[str, Any]) -> mf.ContainerConfig:
    """The image-relevant part of a Docker ``Config`` as an image config."""
    kept = {k: config[k] for k in IMAGE_CONFIG_KEYS if config.get(k) is not None}
    for key in ("ExposedPorts", "Volumes"):
        if key in kept:
            kept[key] = {str(k): {} for k in kept[key]}
    return mf.ContainerConfig.from_json(kept)


# --------------------------------------------------------------------------- deletes


@dataclass
class _Conflict:
    message: str
    hard: bool = False
    used: bool = False


@dataclass
class Usage:
    """Which containers use which images (taken on the event loop, read in threads)."""

    by_image: dict[str, list[tuple[str, bool]]] = field(default_factory=dict)

    def first(self, image_id: str, running: bool | None = None) -> str | None:
        for cid, is_running in self.by_image.get(image_id, []):
            if running is None or running == is_running:
                return cid
        return None


class ImageEngine:
    """The daemon's image operations. Methods without ``async`` block: the routes run
    them in threads."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        self.tmp = daemon.data_root / "tmp"
        self._lock = threading.RLock()  # deletes, prunes and the GC, one at a time
        # What a crash left: partial uploads, and credentials of operations in flight.
        shutil.rmtree(self.tmp, ignore_errors=True)
        self.tmp.mkdir(mode=0o700, parents=True, exist_ok=True)
        for stale in daemon.exec_root.glob("auth-*"):
            shutil.rmtree(stale, ignore_errors=True)

    @property
    def svc(self) -> ImageService:
        assert self.daemon.images is not None
        return self.daemon.images

    def publish(self, action: str, actor: str, name: str, image_id: str | None = None) -> None:
        attrs: dict[str, str] = {}
        if image_id is not None:
            with contextlib.suppress(NotFound):
                image = mf.ImageConfig.from_json(self.svc.meta.get_image(image_id).config)
                attrs.update(image.config.labels or {})
        attrs["name"] = name
        self.daemon.events.publish("image", action, actor, attrs)

    def usage(self) -> Usage:
        """Call on the event loop: the containers and the images they use."""
        out = Usage()
        svc = self.daemon.containers
        for c in svc.all():
            out.by_image.setdefault(c.image_id, []).append((c.id, svc.is_running(c)))
        return out

    def temp_path(self, prefix: str) -> Path:
        fd, name = tempfile.mkstemp(prefix=prefix, dir=self.tmp)
        os.close(fd)
        return Path(name)

    # ------------------------------------------------------------------ credentials

    @contextlib.contextmanager
    def credentials(self, auth: dict[str, str], domain: str) -> Iterator[Path]:
        """A private docker config.json holding the request's credentials for
        ``domain`` (none: a path that does not exist), removed afterwards."""
        from skiff.registry.auth import DOCKER_HUB_KEY

        exec_root = self.daemon.exec_root
        exec_root.mkdir(parents=True, exist_ok=True, mode=0o700)
        d = Path(tempfile.mkdtemp(prefix="auth-", dir=exec_root))
        path = d / "config.json"
        try:
            entry = credentials_entry(auth)
            if entry is not None:
                key = DOCKER_HUB_KEY if domain == DEFAULT_DOMAIN else domain
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "w") as f:
                    json.dump({"auths": {key: entry}}, f)
            yield path
        finally:
            shutil.rmtree(d, ignore_errors=True)

    # ------------------------------------------------------------------ pull and push

    def pull_refs(self, from_image: str, tag: str) -> tuple[Reference, bool]:
        """(reference, all tags?) for ``fromImage`` and ``tag`` as dockerd reads them:
        the tag (or digest) given separately wins over one in the name; neither means
        every tag of the repository."""
        ref = parse_normalized_named(from_image)
        if tag:
            if tag.startswith("sha256:") or ":" in tag:
                ref = Reference(ref.domain, ref.path).with_digest(tag)
            else:
                ref = Reference(ref.domain, ref.path, digest=ref.digest).with_tag(tag)
        return ref, ref.tag is None and ref.digest is None

    def pull(
        self,
        ref: Reference,
        all_tags: bool,
        auth: dict[str, str],
        platform: str | None,
        progress: ProgressFn,
    ) -> list[ImageRecord]:
        from skiff.registry import pull as pulling

        config = self.daemon.config
        out = []
        with self.credentials(auth, ref.domain) as config_path:
            refs = [ref]
            if all_tags:
                refs = [ref.with_tag(t) for t in self._remote_tags(ref, config_path)]
            for one in refs:
                try:
                    record = pulling.pull(
                        self.svc,
                        one.string(),
                        platform=platform,
                        config_path=config_path,
                        concurrency=config.max_concurrent_downloads,
                        progress=progress,
                        mirrors=config.registry_mirrors,
                        insecure=config.insecure_registries,
                    )
                except (Unauthorized, Forbidden) as err:
                    raise NotFound(
                        f"pull access denied for {one.familiar_name}, repository does not exist"
                        f" or may require 'docker login': {err.message}"
                    ) from err
                self.publish("pull", one.familiar(), one.familiar_name, record.id)
                out.append(record)
        return out

    def _remote_tags(self, ref: Reference, config_path: Path) -> list[str]:
        from skiff.registry.client import RegistryClient, raise_for

        client = RegistryClient(ref, config_path=config_path)
        try:
            resp = client.request("GET", "/tags/list")
            with resp:
                if resp.status != 200:
                    raise_for(resp, f"tags of {ref.familiar_name}")
                data = resp.read_all(_TAGS_LIMIT)
        finally:
            client.close()
        try:
            tags = json.loads(data).get("tags") or []
        except (ValueError, AttributeError):
            raise InvalidArgument(f"the registry sent an invalid tag list for {ref.name}") from None
        return sorted(str(t) for t in tags)

    def push_refs(self, name: str, tag: str) -> list[Reference]:
        """The tags a push sends: the one named, else every tag of the repository."""
        ref = parse_normalized_named(name)
        if tag:
            ref = Reference(ref.domain, ref.path).with_tag(tag)
        if ref.digest is not None:
            raise InvalidArgument(f"cannot push a digest reference: {ref.familiar()}")
        if ref.tag is not None:
            refs = [ref]
        else:
            refs = [
                parse_normalized(t)
                for t in sorted(_tag_strings(self.svc))
                if parse_normalized(t).name == ref.name
            ]
        missing = ref.familiar() if ref.tag else ref.familiar_name
        if not refs or any(self.svc.meta.lookup(r) is None for r in refs):
            raise NotFound(f"An image does not exist locally with the tag: {missing}")
        return refs

    def push(self, refs: list[Reference], auth: dict[str, str], progress: ProgressFn) -> None:
        from skiff.registry import push as pushing

        with self.credentials(auth, refs[0].domain) as config_path:
            for ref in refs:
                pushing.push(
                    self.svc,
                    ref.string(),
                    config_path=config_path,
                    progress=progress,
                    concurrency=self.daemon.config.max_concurrent_uploads,
                    insecure=self.daemon.config.insecure_registries,
                )
                self.publish("push", ref.familiar(), ref.familiar_name, self.svc.meta.lookup(ref))

    def login(self, body: dict[str, Any]) -> None:
        """``POST /auth``: the credentials checked against the registry (nothing kept)."""
        from skiff.registry.auth import Credentials
        from skiff.registry.login import check_credentials, server_key

        server = str(body.get("serveraddress") or "")
        username = str(body.get("username") or "")
        password = str(body.get("password") or "")
        token = str(body.get("identitytoken") or "")
        if not username and not token:
            raise InvalidArgument("a username is required")
        domain, _ = server_key(server)
        # An empty private config: the daemon never reads anyone's stored credentials.
        with self.credentials({}, domain) as config_path:
            check_credentials(
                server, Credentials(username, password, token), config_path=config_path
            )

    # ------------------------------------------------------------------ reading

    def list_images(
        self,
        *,
        all_: bool,
        filters: dict[str, list[str]],
        shared_size: bool,
        api_version: str,
    ) -> list[dict[str, Any]]:
        """``GET /images/json``."""
        meta = self.svc.meta
        for key in filters:
            if key not in IMAGE_FILTERS:
                raise InvalidArgument(f"invalid filter '{key}'")
        dangling: bool | None = None
        if "dangling" in filters:
            dangling = parse_bool_filter("dangling", filters["dangling"])
        before = self._created_of(filters.get("before"))
        since = self._created_of(filters.get("since"), latest=True)
        until = min((parse_until(v) for v in filters.get("until", [])), default=None)
        patterns = filters.get("reference", [])
        records = meta.list_images()
        children: dict[str, int] = {}
        for rec in records:
            if rec.parent:
                children[rec.parent] = children.get(rec.parent, 0) + 1
        tags = meta.all_tags()
        layer_refs: dict[str, int] = {}
        layer_sizes: dict[str, int] = {}
        if shared_size:
            layer_sizes = {layer.chain_id: layer.size for layer in meta.list_layers()}
            for rec in records:
                for cid in rec.chain:
                    layer_refs[cid] = layer_refs.get(cid, 0) + 1
        old_api = parse_api_version(api_version) < (1, 43)
        out = []
        for rec in records:
            cfg = mf.ImageConfig.from_json(rec.config)
            created = parse_rfc3339(cfg.created, 0.0)
            if before is not None and created >= before:
                continue
            if since is not None and created <= since:
                continue
            if until is not None and created > until:
                continue
            labels = dict(cfg.config.labels or {})
            if "label" in filters and not label_match(labels, filters["label"]):
                continue
            repo_tags = [parse_normalized(t) for t in tags.get(rec.id, [])]
            repo_digests = [parse_normalized_named(d) for d in meta.digests_of(rec.id)]
            if dangling is True and (repo_tags or children.get(rec.id)):
                continue
            if patterns:
                repo_tags = [r for r in repo_tags if any(reference_match(p, r) for p in patterns)]
                repo_digests = [
                    r for r in repo_digests if any(reference_match(p, r) for p in patterns)
                ]
            if not repo_tags and not repo_digests:
                if not all_ and children.get(rec.id):
                    continue  # an intermediate image
                if dangling is False or patterns:
                    continue
            entry: dict[str, Any] = {
                "Id": rec.id,
                "ParentId": rec.parent or "",
                "RepoTags": [r.familiar() for r in repo_tags],
                "RepoDigests": [r.familiar() for r in repo_digests],
                "Created": int(created),
                "Size": rec.size,
                "SharedSize": -1,
                "Labels": labels,
                "Containers": -1,
            }
            if old_api and not entry["RepoTags"] and not entry["RepoDigests"]:
                entry["RepoTags"] = ["<none>:<none>"]
                entry["RepoDigests"] = ["<none>@<none>"]
            if parse_api_version(api_version) < (1, 44):
                entry["VirtualSize"] = rec.size
            if shared_size:
                entry["SharedSize"] = sum(
                    layer_sizes.get(cid, 0) for cid in rec.chain if layer_refs.get(cid, 0) > 1
                )
            out.append((created, entry))
        out.sort(key=lambda pair: pair[0], reverse=True)
        return [entry for _, entry in out]

    def _created_of(self, names: list[str] | None, latest: bool = False) -> float | None:
        if not names:
            return None
        times = []
        for name in names:
            img = self.svc.get(name)
            times.append(parse_rfc3339(img.config.created, 0.0))
        return max(times) if latest else min(times)

    def inspect(self, name: str, api_version: str) -> dict[str, Any]:
        out = self.svc.inspect(name)
        out["RepoDigests"] = [familiar(d) for d in out.get("RepoDigests") or []]
        metadata = out.setdefault("Metadata", {})
        if not metadata.get("LastTagTime"):
            metadata["LastTagTime"] = "0001-01-01T00:00:00Z"
        if parse_api_version(api_version) < (1, 44):
            out["VirtualSize"] = out.get("Size", 0)
        if parse_api_version(api_version) < (1, 45):
            out.setdefault("Container", "")
            out.setdefault("ContainerConfig", None)
        return out

    # ------------------------------------------------------------------ tags

    def tag(self, name: str, repo: str, tag: str) -> None:
        """``POST /images/{name}/tag``."""
        if not repo:
            raise InvalidArgument("repository name must have at least one component")
        ref = parse_normalized_named(repo)
        if ref.digest is not None:
            raise InvalidArgument("refusing to create a tag with a digest reference")
        if tag:
            ref = Reference(ref.domain, ref.path).with_tag(tag)
        ref = ref.tag_name_only()
        image_id = self.svc.meta.resolve(name)
        self.svc.meta.tag(ref, image_id)
        self.publish("tag", image_id, ref.familiar(), image_id)

    # ------------------------------------------------------------------ delete

    def delete(
        self, name: str, *, force: bool, prune: bool, usage: Usage, collect: bool = True
    ) -> list[dict[str, str]]:
        """``DELETE /images/{name}``, with dockerd's rules: a reference is untagged
        (refused while a container uses the image it is the last name of, unless
        forced); the image goes when nothing names it any more, unless a container or
        a child image keeps it; by ID, the image goes with all its names."""
        with self._lock:
            records: list[dict[str, str]] = []
            try:
                self._delete(name, force, prune, usage, records)
            finally:
                if collect and any("Deleted" in r for r in records):
                    self.collect()
            return records

    def _refs(self, image_id: str) -> list[Reference]:
        meta = self.svc.meta
        return [parse_normalized(t) for t in meta.tags_of(image_id)] + [
            parse_normalized_named(d) for d in meta.digests_of(image_id)
        ]

    def _delete(
        self, name: str, force: bool, prune: bool, usage: Usage, records: list[dict[str, str]]
    ) -> None:
        meta = self.svc.meta
        image_id = meta.resolve(name)
        refs = self._refs(image_id)
        hexid = image_id.split(":", 1)[1]
        by_id = image_id.startswith(name) or hexid.startswith(name)
        removed_ref = False
        if not by_id:
            if not force and _single_reference(refs):
                cid = usage.first(image_id)
                if cid is not None:
                    raise Conflict(
                        f'conflict: unable to remove repository reference "{name}" (must force)'
                        f" - container {cid[:12]} is using its referenced image {hexid[:12]}"
                    )
            ref = parse_normalized_named(name).tag_name_only()
            meta.untag(ref)
            records.append({"Untagged": ref.familiar()})
            self.publish("untag", image_id, ref.familiar(), image_id)
            refs = [r for r in refs if r != ref]
            if ref.digest is None and not any(
                r.digest is None and r.name == ref.name for r in refs
            ):
                for r in [r for r in refs if r.digest is not None and r.name == ref.name]:
                    meta.untag(r)
                    records.append({"Untagged": r.familiar()})
                    self.publish("untag", image_id, r.familiar(), image_id)
                    refs.remove(r)
            if refs:
                return
            removed_ref = True
        elif _single_reference(refs):
            conflict = self._conflict(image_id, usage, hard=True, soft=not force, refs=False)
            if conflict is not None:
                raise Conflict(_conflict_text(image_id, conflict))
            for r in refs:
                meta.untag(r)
                records.append({"Untagged": r.familiar()})
                self.publish("untag", image_id, r.familiar(), image_id)
        self._delete_image(image_id, force, prune, removed_ref, usage, records)

    def _conflict(
        self, image_id: str, usage: Usage, *, hard: bool, soft: bool, refs: bool = True
    ) -> _Conflict | None:
        meta = self.svc.meta
        if hard and meta.image_children(image_id):
            return _Conflict("image has dependent child images", hard=True)
        if hard:
            cid = usage.first(image_id, running=True)
            if cid is not None:
                return _Conflict(
                    f"image is being used by running container {cid[:12]}", hard=True, used=True
                )
        if soft and refs and (meta.tags_of(image_id) or meta.digests_of(image_id)):
            return _Conflict("image is referenced in multiple repositories")
        if soft:
            cid = usage.first(image_id, running=False)
            if cid is not None:
                return _Conflict(f"image is being used by stopped container {cid[:12]}", used=True)
        return None

    def _dangling(self, image_id: str) -> bool:
        meta = self.svc.meta
        return not (
            meta.tags_of(image_id) or meta.digests_of(image_id) or meta.image_children(image_id)
        )

    def _delete_image(
        self,
        image_id: str,
        force: bool,
        prune: bool,
        quiet: bool,
        usage: Usage,
        records: list[dict[str, str]],
    ) -> None:
        meta = self.svc.meta
        conflict = self._conflict(image_id, usage, hard=True, soft=not force)
        if conflict is not None:
            if quiet and (not self._dangling(image_id) or conflict.used):
                return
            raise Conflict(_conflict_text(image_id, conflict))
        record = meta.get_image(image_id)
        for r in self._refs(image_id):
            meta.untag(r)
            records.append({"Untagged": r.familiar()})
            self.publish("untag", image_id, r.familiar(), image_id)
        meta.delete_image(image_id)
        records.append({"Deleted": image_id})
        self.publish("delete", image_id, image_id)
        if prune and record.parent and meta.find_image(record.parent) is not None:
            self._delete_image(record.parent, False, True, True, usage, records)

    def collect(self) -> int:
        """Garbage collection after deletes: unreferenced layers and blobs go; returns
        the bytes freed (unpacked layers and blobs)."""
        with self._lock:
            meta = self.svc.meta
            before = {layer.chain_id: layer.size for layer in meta.list_layers()}
            report = self.svc.prune()
            after = {layer.chain_id for layer in meta.list_layers()}
            freed = sum(size for cid, size in before.items() if cid not in after)
            return freed + int(report.get("SpaceReclaimed") or 0)

    def prune(self, filters: dict[str, list[str]], usage: Usage) -> dict[str, Any]:
        """``POST /images/prune``: dangling images (all unused ones with
        ``dangling=false``) that no container uses, then a garbage collection."""
        for key in filters:
            if key not in PRUNE_FILTERS:
                raise InvalidArgument(f"invalid filter '{key}'")
        dangling_only = True
        if "dangling" in filters:
            dangling_only = parse_bool_filter("dangling", filters["dangling"])
        until = min((parse_until(v) for v in filters.get("until", [])), default=None)
        meta = self.svc.meta
        deleted: list[dict[str, str]] = []
        with self._lock:
            for rec in meta.list_images():
                if meta.find_image(rec.id) is None:
                    continue  # went with an earlier one
                if usage.first(rec.id) is not None:
                    continue
                cfg = mf.ImageConfig.from_json(rec.config)
                if until is not None and parse_rfc3339(cfg.created, 0.0) > until:
                    continue
                labels = dict(cfg.config.labels or {})
                if "label" in filters and not label_match(labels, filters["label"]):
                    continue
                if "label!" in filters and not label_match(labels, filters["label!"], True):
                    continue
                refs = self._refs(rec.id)
                has_children = bool(meta.image_children(rec.id))
                if not refs and has_children:
                    continue  # an intermediate image: goes with its child
                if dangling_only and (has_children or any(r.digest is None for r in refs)):
                    continue
                names = [r.string() for r in refs] or [rec.id]
                for name in names:
                    try:
                        deleted.extend(
                            self.delete(name, force=False, prune=True, usage=usage, collect=False)
                        )
                    except (Conflict, NotFound):
                        continue
            reclaimed = self.collect()
        return {"ImagesDeleted": deleted or None, "SpaceReclaimed": reclaimed}

    # ------------------------------------------------------------------ save, load, import

    def save_names(self, names: list[str]) -> list[str]:
        """The names a save exports: a repository without a tag means all its tags.
        NotFound (before anything is written) for a name that names nothing."""
        meta = self.svc.meta
        out: list[str] = []
        for name in names:
            if not name:
                continue
            expanded: list[str] = []
            if not is_image_id(name) and not looks_like_id(name):
                with contextlib.suppress(InvalidArgument):
                    ref = parse_normalized_named(name)
                    if ref.is_name_only:
                        expanded = [
                            t
                            for t in _tag_strings(self.svc)
                            if parse_normalized(t).name == ref.name
                        ]
            for n in expanded or [name]:
                meta.resolve(n)
                if n not in out:
                    out.append(n)
        if not out:
            raise InvalidArgument("no image names given")
        return out

    def save(self, names: list[str], out: Any) -> None:
        from skiff.image import archive

        archive.save(self.svc, names, out)
        for image_id in dict.fromkeys(self.svc.meta.resolve(n) for n in names):
            self.publish("save", image_id, image_id, image_id)

    def load(self, path: Path) -> list[str]:
        from skiff.image import archive

        lines = archive.load(self.svc, path)
        for line in lines:
            name = line.split(": ", 1)[-1]
            with contextlib.suppress(NotFound, InvalidArgument):
                image_id = self.svc.meta.resolve(name)
                self.publish("load", image_id, image_id, image_id)
        return lines

    def import_target(
        self, *, repo: str, tag: str, changes: list[str]
    ) -> tuple[str | None, mf.ContainerConfig]:
        """The tag (normalized, or None) and config an import gives its image; checked
        before the tar is read."""
        ref_text = _target_ref(repo, tag, "cannot import digest reference")
        return ref_text, image_config(apply_changes({}, changes))

    def import_(
        self, path: Path, ref_text: str | None, config: mf.ContainerConfig, message: str
    ) -> str:
        """``POST /images/create?fromSrc=-``: a root filesystem tar as an image."""
        record = self.svc.import_tar(path, tag=ref_text, container_config=config, message=message)
        self.publish("import", record.id, record.id, record.id)
        if ref_text is not None:
            self.publish("tag", record.id, familiar(ref_text), record.id)
        return record.id

    # ------------------------------------------------------------------ commit

    def commit_config(
        self, c: Container, body: Any, changes: list[str]
    ) -> tuple[mf.ContainerConfig, str]:
        """The committed image's config (request config, changes, then the container's
        config for what is left unset) and its history's created_by."""
        if body is not None and not isinstance(body, dict):
            raise InvalidArgument("the commit body must be a container config object")
        base = body if body else c.config
        user = apply_changes(base, changes)
        merged = merge_config(user, c.config)
        return image_config(merged), " ".join(c.config.get("Cmd") or [])

    def commit(
        self,
        c: Container,
        config: mf.ContainerConfig,
        *,
        repo: str,
        tag: str,
        comment: str,
        author: str,
        created_by: str,
    ) -> str:
        from skiff.image import commit as committing

        ref_text = _target_ref(repo, tag, "cannot commit to a digest reference")
        if ref_text is None and tag:
            raise InvalidArgument("a tag needs a repository name")
        record = committing.commit(
            self.svc,
            c.upper,
            c.image_id,
            tag=ref_text,
            config=config,
            comment=comment,
            author=author,
            created_by=created_by,
        )
        attrs = {
            "comment": comment,
            "imageID": record.id,
            "imageRef": familiar(ref_text) if ref_text else "",
            "image": c.image_name,
            "name": c.name,
        }
        attrs.update({k: str(v) for k, v in (c.config.get("Labels") or {}).items()})
        self.daemon.events.publish("container", "commit", c.id, attrs)
        if ref_text is not None:
            self.publish("tag", record.id, familiar(ref_text), record.id)
        return record.id


def _tag_strings(svc: ImageService) -> list[str]:
    """Every tag in the store (normalized strings)."""
    return [t for tags in svc.meta.all_tags().values() for t in tags]


def _single_reference(refs: list[Reference]) -> bool:
    """At most one tag, and all references in that tag's repository (dockerd's
    ``isSingleReference``); False for none."""
    if len(refs) <= 1:
        return len(refs) == 1
    tags = [r for r in refs if r.digest is None]
    if len(tags) > 1:
        return False
    digest_names = {r.name for r in refs if r.digest is not None}
    single = tags[0] if tags else refs[0]
    return len(digest_names) == 1 and single.name in digest_names


def _conflict_text(image_id: str, conflict: _Conflict) -> str:
    how = "cannot be forced" if conflict.hard else "must be forced"
    return (
        f"conflict: unable to delete {image_id.split(':', 1)[1][:12]} ({how}) - {conflict.message}"
    )


def error_message(err: BaseException) -> dict[str, Any]:
    """An error in the middle of a JSON progress stream."""
    from skiff.errors import SkiffError

    text = err.message if isinstance(err, SkiffError) else str(err) or type(err).__name__
    return {"errorDetail": {"message": text}, "error": text}


__all__ = [
    "ImageEngine",
    "Usage",
    "apply_changes",
    "decode_registry_auth",
    "error_message",
    "merge_config",
    "parse_changes",
    "reference_match",
]


def _target_ref(repo: str, tag: str, digest_error: str) -> str | None:
    """The normalized ``repo[:tag]`` an import or commit names (None without a
    repository); a digest reference is refused with ``digest_error``."""
    if not repo:
        return None
    ref = parse_normalized_named(repo)
    if ref.digest is not None:
        raise InvalidArgument(digest_error)
    if tag:
        ref = Reference(ref.domain, ref.path).with_tag(tag)
    return ref.tag_name_only().string()
