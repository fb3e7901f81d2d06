"""A container's OCI config.json from its Docker ``Config`` and ``HostConfig``.

Starts from :func:`skiff.runtime.spec.default_config` (Docker's defaults) and applies
what the client asked for: user, env, working dir, mounts (binds, ``Mounts``, tmpfs,
and the container's hostname/hosts/resolv.conf files), resources, capabilities,
seccomp, sysctls, rlimits, namespaces by network/pid/ipc/uts mode. User and group
names are looked up in the container's own /etc/passwd and /etc/group (the rootfs
must be mounted), as Docker does.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import posixpath
import stat
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from skiff.engine import inroot
from skiff.engine.container import Container
from skiff.engine.seccomp_default import default_profile
from skiff.errors import InvalidArgument, NotFound
from skiff.runtime.spec import DEFAULT_CAPS, DEFAULT_PATH, default_config

#: The capabilities of ``--privileged`` and of ``--cap-add ALL``.
ALL_CAPS = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
]

INIT_PATH = "/sbin/docker-init"
#: Where ``--init``'s binary comes from: tini's static build (Debian's ``tini``).
INIT_BINARIES = ("/usr/bin/tini-static", "/usr/bin/docker-init")


def cap_name(name: str) -> str:
    upper = name.upper()
    return upper if upper.startswith("CAP_") or upper == "ALL" else "CAP_" + upper


def host_capabilities() -> list[str]:
    """Every capability the daemon itself may hold (its bounding set): what "all
    capabilities" means here, since a process cannot be given one its parent's
    bounding set lacks. (``ALL_CAPS`` is in the kernel's numbering.)"""
    bounding = -1
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("CapBnd:"):
                bounding = int(line.split()[1], 16)
    return [name for bit, name in enumerate(ALL_CAPS) if bounding >> bit & 1]


def capabilities(host_config: dict[str, Any]) -> list[str]:
    """Docker's rule: start from the default set (all when privileged); ``CapAdd``
    adds, ``CapDrop`` removes; ALL in either means every capability (that the host
    allows)."""
    if host_config.get("Privileged"):
        return host_capabilities()
    add = [cap_name(c) for c in host_config.get("CapAdd") or []]
    drop = [cap_name(c) for c in host_config.get("CapDrop") or []]
    for name in add + drop:
        if name != "ALL" and name not in ALL_CAPS:
            raise InvalidArgument(f"unknown capability: {name!r}")
    caps = host_capabilities() if "ALL" in add else list(DEFAULT_CAPS)
    caps += [c for c in add if c != "ALL" and c not in caps]
    if "ALL" in drop:
        return [c for c in add if c != "ALL"]
    return [c for c in caps if c not in drop]


# ----------------------------------------------------------------------- users


#: The image's own /etc/passwd and /etc/group, by the container's layers (which never
#: change once unpacked): a container whose own layer has no /etc reads the same.
_IMAGE_USER_DBS: collections.OrderedDict[tuple[str, ...], UserDb] = collections.OrderedDict()
_IMAGE_USER_DBS_MAX = 32
_image_user_dbs_lock = threading.Lock()


@dataclass(frozen=True)
class UserDb:
    """A container's /etc/passwd and /etc/group, as rows of fields."""

    passwd: tuple[tuple[str, ...], ...]
    group: tuple[tuple[str, ...], ...]


def read_user_db(rootfs: Path) -> UserDb:
    """The passwd and group files of the root filesystem mounted at ``rootfs``,
    looked up inside it (a symlink there never leads to the host's); missing ones
    are empty."""
    return _read_user_db(rootfs, check=False)[0]


def _read_user_db(rootfs: Path, *, check: bool) -> tuple[UserDb, bool]:
    """:func:`read_user_db`; with ``check``, also whether what was read is the
    image's own for sure: ``rootfs`` was a mount point when opened, and neither
    /etc nor the two files is a symlink (a target elsewhere could have been
    changed in the container's own layer)."""
    try:
        fd = os.open(rootfs, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return UserDb((), ()), False
    root = inroot.Root(fd)
    try:
        plain = (
            check
            and _mounted(fd, rootfs)
            and not any(_is_link(root, p) for p in ("/etc", "/etc/passwd", "/etc/group"))
        )
        db = UserDb(_read_rows(root, "/etc/passwd"), _read_rows(root, "/etc/group"))
        return db, plain
    finally:
        root.close()


def _mounted(fd: int, path: Path) -> bool:
    """Whether the directory ``fd`` (opened at ``path``) is a mount's root."""
    try:
        return os.fstat(fd).st_dev != os.stat(path.parent).st_dev
    except OSError:
        return False


def _is_link(root: inroot.Root, path: str) -> bool:
    try:
        node = root.lookup(path)
    except OSError:
        return False  # missing: nothing to follow
    try:
        return stat.S_ISLNK(node.stat().st_mode)
    finally:
        node.close()


def _read_rows(root: inroot.Root, path: str) -> tuple[tuple[str, ...], ...]:
    try:
        node = root.lookup(path, follow=True)
    except OSError:
        return ()
    try:
        if not stat.S_ISREG(node.stat().st_mode):
            return ()
        with os.fdopen(inroot.reopen(node.fd, os.O_RDONLY | os.O_CLOEXEC), "rb") as f:
            text = f.read().decode(errors="replace")
    except OSError:
        return ()
    finally:
        node.close()
    return tuple(
        tuple(line.split(":")) for line in text.splitlines() if line and not line.startswith("#")
    )


def user_db(c: Container) -> UserDb:
    """``c``'s passwd and group: the image's, read once per image, while the
    container's own layer has no /etc (nothing copied or written there) and the
    image's are plain files."""
    if os.path.lexists(c.upper / "etc"):
        return read_user_db(c.rootfs)
    key = tuple(c.lowers)
    with _image_user_dbs_lock:
        db = _IMAGE_USER_DBS.get(key)
        if db is not None:
            _IMAGE_USER_DBS.move_to_end(key)
            return db
    db, plain = _read_user_db(c.rootfs, check=True)
    if plain:
        with _image_user_dbs_lock:
            _IMAGE_USER_DBS[key] = db
            while len(_IMAGE_USER_DBS) > _IMAGE_USER_DBS_MAX:
                _IMAGE_USER_DBS.popitem(last=False)
    return db


def resolve_user(db: UserDb, user: str, group_add: list[str]) -> dict[str, Any]:
    """``User`` ("name", "uid", "name:group", "uid:gid") and ``GroupAdd`` as the
    OCI user {uid, gid, additionalGids}, from the container's passwd and group."""
    passwd, groups = db.passwd, db.group
    name, _, group = (user or "").partition(":")
    uid, gid, home_user = 0, 0, "root"
    if name:
        by_name = [p for p in passwd if len(p) > 3 and p[0] == name]
        by_uid = [p for p in passwd if len(p) > 3 and p[2] == name] if name.isdigit() else []
        entry: tuple[str, ...] | None = (by_name or by_uid)[0] if by_name or by_uid else None
        if entry is not None:
            uid, gid, home_user = int(entry[2]), int(entry[3]), entry[0]
        elif name.isdigit():
            uid, gid, home_user = int(name), 0, ""
        else:
            raise NotFound(f"unable to find user {name}: no matching entries in passwd file")
    else:
        root = [p for p in passwd if len(p) > 3 and p[2] == "0"]
        if root:
            home_user = root[0][0]

    def group_id(text: str) -> int:
        if text.isdigit():
            return int(text)
        found = next((g for g in groups if len(g) > 2 and g[0] == text), None)
        if found is None:
            raise NotFound(f"unable to find group {text}: no matching entries in group file")
        return int(found[2])

    if group:
        gid = group_id(group)
    extra: list[int] = []
    if home_user and not group:
        for member in groups:
            if len(member) > 3 and home_user in member[3].split(",") and int(member[2]) != gid:
                extra.append(int(member[2]))
    for added in group_add or []:
        extra.append(group_id(added))
    out: dict[str, Any] = {"uid": uid, "gid": gid}
    if extra:
        out["additionalGids"] = sorted(set(extra))
    return out


def home_of(db: UserDb, uid: int) -> str:
    for p in db.passwd:
        if len(p) > 5 and p[2] == str(uid):
            return p[5] or "/"
    return "/"


# ----------------------------------------------------------------------- mounts


def _bind_options(opts: list[str]) -> list[str]:
    out = ["rbind"]
    out.append("ro" if "ro" in opts else "rw")
    for o in opts:
        if o in ("shared", "rshared", "slave", "rslave", "private", "rprivate"):
            out.append(o)
    if not any(o.endswith(("shared", "slave", "private")) for o in out):
        out.append("rprivate")
    return out


def check_mount_targets(host_config: dict[str, Any]) -> None:
    """Refuses, as dockerd does, a bind, mount or tmpfs on the container's root."""

    def is_root(dst: str) -> bool:
        return dst.startswith("/") and posixpath.normpath("/" + dst.lstrip("/")) == "/"

    refused = "invalid specification: destination can't be '/'"
    for bind in host_config.get("Binds") or []:
        parts = bind.split(":")
        if len(parts) in (2, 3) and is_root(parts[1]):
            raise InvalidArgument(
                f"invalid volume specification: '{bind}': invalid mount config for type "
                f'"bind": {refused}'
            )
    for m in host_config.get("Mounts") or []:
        if is_root(m.get("Target") or m.get("Destination") or ""):
            kind = m.get("Type") or "volume"
            raise InvalidArgument(f'invalid mount config for type "{kind}": {refused}')
    for dst in host_config.get("Tmpfs") or {}:
        if is_root(dst):
            raise InvalidArgument(refused)


def user_mounts(host_config: dict[str, Any], volumes_root: Path) -> list[dict[str, Any]]:
    """Binds (``src:dst[:opts]``), ``Mounts`` and ``Tmpfs`` as OCI mounts (a
    mount on the root was refused at create: :func:`check_mount_targets`)."""
    mounts: list[dict[str, Any]] = []
    for bind in host_config.get("Binds") or []:
        parts = bind.split(":")
        if len(parts) < 2 or len(parts) > 3:
            raise InvalidArgument(f"invalid volume specification: '{bind}'")
        src, dst = parts[0], parts[1]
        opts = parts[2].split(",") if len(parts) == 3 else []
        if not dst.startswith("/"):
            raise InvalidArgument(
                f"invalid volume specification: '{bind}': invalid mount config for type "
                f"\"bind\": invalid mount path: '{dst}' mount path must be absolute"
            )
        if not src.startswith("/"):
            src = str(_volume_dir(volumes_root, src))
        else:
            Path(src).mkdir(parents=True, exist_ok=True)
        mounts.append(
            {"destination": dst, "type": "bind", "source": src, "options": _bind_options(opts)}
        )
    for m in host_config.get("Mounts") or []:
        kind = m.get("Type") or "volume"
        target = m.get("Target") or m.get("Destination") or ""
        if not target.startswith("/"):
            raise InvalidArgument(f"invalid mount config: mount path must be absolute: {target!r}")
        ro = bool(m.get("ReadOnly"))
        if kind == "bind":
            src = m.get("Source") or ""
            if not os.path.exists(src):
                raise InvalidArgument(
                    f'invalid mount config for type "bind": bind source path does not exist: {src}'
                )
            opts = ["ro" if ro else "rw"]
            prop = (m.get("BindOptions") or {}).get("Propagation")
            if prop:
                opts.append(prop)
            mounts.append(
                {
                    "destination": target,
                    "type": "bind",
                    "source": src,
                    "options": _bind_options(opts),
                }
            )
        elif kind == "tmpfs":
            topts = m.get("TmpfsOptions") or {}
            opts = ["nosuid", "nodev"]
            if topts.get("SizeBytes"):
                opts.append(f"size={int(topts['SizeBytes'])}")
            if topts.get("Mode"):
                opts.append(f"mode={int(topts['Mode']):o}")
            if ro:
                opts.append("ro")
            mounts.append(
                {"destination": target, "type": "tmpfs", "source": "tmpfs", "options": opts}
            )
        elif kind == "volume":
            name = m.get("Source") or ""
            src = _volume_dir(volumes_root, name or os.urandom(16).hex())
            mounts.append(
                {
                    "destination": target,
                    "type": "bind",
                    "source": str(src),
                    "options": _bind_options(["ro"] if ro else []),
                }
            )
        else:
            raise InvalidArgument(f"mount type {kind!r} is not supported")
    for dst, text in (host_config.get("Tmpfs") or {}).items():
        opts = ["nosuid", "nodev", "noexec"]
        for o in (text or "").split(","):
            if o and o not in opts:
                opts.append(o)
        mounts.append({"destination": dst, "type": "tmpfs", "source": "tmpfs", "options": opts})
    return mounts


def _volume_dir(volumes_root: Path, name: str) -> Path:
    if "/" in name or name in (".", ".."):
        raise InvalidArgument(f"invalid volume name {name!r}")
    path = volumes_root / name / "_data"
    path.mkdir(parents=True, exist_ok=True)
    return path


# ----------------------------------------------------------------------- resources


def resources(hc: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    memory: dict[str, Any] = {}
    if hc.get("Memory"):
        memory["limit"] = int(hc["Memory"])
        swap = hc.get("MemorySwap")
        if swap is None or swap == 0:
            memory["swap"] = int(hc["Memory"]) * 2
        elif swap != -1:
            memory["swap"] = int(swap)
        else:
            memory["swap"] = -1
    if hc.get("MemoryReservation"):
        memory["reservation"] = int(hc["MemoryReservation"])
    if memory:
        out["memory"] = memory
    cpu: dict[str, Any] = {}
    if hc.get("NanoCpus"):
        if hc.get("CpuQuota") or hc.get("CpuPeriod"):
            raise InvalidArgument(
                "conflicting options: Nano CPUs and CPU Period/Quota cannot both be set"
            )
        cpu["period"] = 100_000
        cpu["quota"] = int(hc["NanoCpus"]) * 100_000 // 1_000_000_000
    if hc.get("CpuQuota"):
        cpu["quota"] = int(hc["CpuQuota"])
    if hc.get("CpuPeriod"):
        cpu["period"] = int(hc["CpuPeriod"])
    if hc.get("CpuShares"):
        cpu["shares"] = int(hc["CpuShares"])
    if hc.get("CpusetCpus"):
        cpu["cpus"] = str(hc["CpusetCpus"])
    if hc.get("CpusetMems"):
        cpu["mems"] = str(hc["CpusetMems"])
    if cpu:
        out["cpu"] = cpu
    if hc.get("PidsLimit"):
        limit = int(hc["PidsLimit"])
        if limit > 0 or limit == -1:
            out["pids"] = {"limit": limit}
    if hc.get("BlkioWeight"):
        out["blockIO"] = {"weight": int(hc["BlkioWeight"])}
    return out


# ----------------------------------------------------------------------- security


def security(hc: dict[str, Any], caps: list[str]) -> tuple[bool, dict[str, Any] | None]:
    """(no_new_privileges, seccomp profile or None) from ``SecurityOpt``."""
    nnp = False
    seccomp: dict[str, Any] | None = None if hc.get("Privileged") else default_profile(caps)
    for opt in hc.get("SecurityOpt") or []:
        key, sep, value = opt.partition("=")
        if not sep:
            key, sep, value = opt.partition(":")
        if key == "no-new-privileges":
            nnp = value in ("", "true", "1")
        elif key == "seccomp":
            if value == "unconfined":
                seccomp = None
            elif value in ("builtin", "default"):
                seccomp = default_profile(caps)
            else:
                try:
                    profile = json.loads(value)
                except ValueError as err:
                    raise InvalidArgument(f"decoding seccomp profile failed: {err}") from None
                if not isinstance(profile, dict):
                    raise InvalidArgument("decoding seccomp profile failed: not an object")
                seccomp = _docker_profile_to_oci(profile)
        elif key in ("apparmor", "label", "systempaths", "proc-opts"):
            continue
        else:
            raise InvalidArgument(f"invalid --security-opt: {opt!r}")
    return nnp, seccomp


def _docker_profile_to_oci(profile: dict[str, Any]) -> dict[str, Any]:
    """A profile in Docker's format (``syscalls[].names`` with ``includes``/``excludes``,
    ``archMap``) as an OCI ``linux.seccomp``; OCI-shaped profiles pass through."""
    out: dict[str, Any] = {"defaultAction": profile.get("defaultAction", "SCMP_ACT_ALLOW")}
    if "defaultErrnoRet" in profile:
        out["defaultErrnoRet"] = profile["defaultErrnoRet"]
    arches = list(profile.get("architectures") or [])
    for entry in profile.get("archMap") or []:
        arches.append(entry.get("architecture"))
        arches.extend(entry.get("subArchitectures") or [])
    if arches:
        out["architectures"] = [a for a in arches if a]
    if profile.get("flags"):
        out["flags"] = profile["flags"]
    syscalls = []
    for rule in profile.get("syscalls") or []:
        if rule.get("includes") or rule.get("excludes"):
            continue  # conditional on caps/arches/kernels: not applied
        names = rule.get("names") or ([rule["name"]] if rule.get("name") else [])
        item: dict[str, Any] = {"names": names, "action": rule.get("action", "SCMP_ACT_ALLOW")}
        if rule.get("args"):
            item["args"] = rule["args"]
        if "errnoRet" in rule:
            item["errnoRet"] = rule["errnoRet"]
        syscalls.append(item)
    out["syscalls"] = syscalls
    return out


RLIMITS = {
    "core",
    "cpu",
    "data",
    "fsize",
    "locks",
    "memlock",
    "msgqueue",
    "nice",
    "nofile",
    "nproc",
    "rss",
    "rtprio",
    "rttime",
    "sigpending",
    "stack",
    "as",
}


def rlimits(hc: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for u in hc.get("Ulimits") or []:
        name = str(u.get("Name", "")).lower()
        if name not in RLIMITS:
            raise InvalidArgument(f"invalid ulimit type: {name}")
        out.append({"type": f"RLIMIT_{name.upper()}", "soft": u["Soft"], "hard": u["Hard"]})
    return out


# ----------------------------------------------------------------------- the config


def build(
    c: Container,
    *,
    volumes_root: Path,
    netns_path: str | None = None,
    init_binary: str | None = None,
) -> dict[str, Any]:
    """The config.json for starting ``c`` (its rootfs mounted at ``c.rootfs``), in
    the network namespace at ``netns_path`` when given (not with the host's)."""
    cfg, hc = c.config, c.host_config
    hostname = cfg.get("Hostname") or c.id[:12]
    net_mode = hc.get("NetworkMode") or "default"
    args = process_args(c, init_binary)

    env = list(cfg.get("Env") or [])
    names = {e.partition("=")[0] for e in env}
    if "PATH" not in names:
        env.insert(0, f"PATH={DEFAULT_PATH}")
    if "HOSTNAME" not in names:
        env.insert(1, f"HOSTNAME={hostname}")
    if c.tty and "TERM" not in names:
        env.append("TERM=xterm")

    spec = default_config(
        args,
        rootfs=str(c.rootfs),
        env=env,
        cwd=cfg.get("WorkingDir") or "/",
        hostname=hostname if net_mode != "host" else "",
        terminal=c.tty,
        network=net_mode != "host",
        cgroups_path=f"/skiff/{c.id}",
    )
    proc = spec["process"]
    db = user_db(c)
    user = resolve_user(db, cfg.get("User") or "", hc.get("GroupAdd") or [])
    proc["user"] = user
    if "HOME" not in names:
        proc["env"].append(f"HOME={home_of(db, user['uid'])}")
    caps = capabilities(hc)
    proc["capabilities"] = {"bounding": caps, "effective": caps, "permitted": caps}
    if user["uid"] != 0:
        # A non-root user keeps no effective capabilities (as the kernel would give it).
        proc["capabilities"]["effective"] = []
        proc["capabilities"]["permitted"] = []
    nnp, seccomp = security(hc, caps)
    proc["noNewPrivileges"] = nnp
    limits = rlimits(hc)
    if limits:
        proc["rlimits"] = limits
    if hc.get("OomScoreAdj"):
        proc["oomScoreAdj"] = int(hc["OomScoreAdj"])
    if c.tty and hc.get("ConsoleSize"):
        h, w = hc["ConsoleSize"]
        if h and w:
            proc["consoleSize"] = {"height": int(h), "width": int(w)}

    spec["root"]["readonly"] = bool(hc.get("ReadonlyRootfs"))
    linux = spec["linux"]
    if seccomp is not None:
        linux["seccomp"] = seccomp
    res = resources(hc)
    linux["resources"].update(res)
    if hc.get("Sysctls"):
        linux["sysctl"] = {str(k): str(v) for k, v in hc["Sysctls"].items()}

    namespaces = linux["namespaces"]
    if netns_path and net_mode != "host":
        for ns in namespaces:
            if ns["type"] == "network":
                ns["path"] = netns_path
    for key, ns_type in (("PidMode", "pid"), ("IpcMode", "ipc"), ("UTSMode", "uts")):
        if hc.get(key) == "host":
            linux["namespaces"] = namespaces = [n for n in namespaces if n["type"] != ns_type]

    if hc.get("Privileged"):
        linux["maskedPaths"] = []
        linux["readonlyPaths"] = []
        linux["resources"]["devices"] = [{"allow": True, "access": "rwm"}]
        for m in spec["mounts"]:
            if m["destination"] in ("/sys", "/sys/fs/cgroup"):
                m["options"] = [o for o in m["options"] if o != "ro"] + ["rw"]

    mounts = spec["mounts"]
    shm = hc.get("ShmSize")
    for m in mounts:
        if m["destination"] == "/dev/shm" and shm:
            m["options"] = [o for o in m["options"] if not o.startswith("size=")]
            m["options"].append(f"size={int(shm)}")
    user_defined = user_mounts(hc, volumes_root)
    taken = {m["destination"] for m in user_defined}
    for fname, dst in (
        ("hostname", "/etc/hostname"),
        ("hosts", "/etc/hosts"),
        ("resolv.conf", "/etc/resolv.conf"),
    ):
        if dst in taken:
            continue
        opts = ["rbind", "rprivate"]
        if hc.get("ReadonlyRootfs"):
            opts.append("ro")
        mounts.append(
            {"destination": dst, "type": "bind", "source": str(c.root / fname), "options": opts}
        )
    if hc.get("Init") and init_binary is not None:
        mounts.append(
            {
                "destination": INIT_PATH,
                "type": "bind",
                "source": init_binary,
                "options": ["bind", "ro", "rprivate"],
            }
        )
    # Deeper destinations after shallower ones, so /a/b lands inside a mount at /a
    # (counted on the cleaned path, as dockerd does: /./a is no deeper than /a).
    spec["mounts"] = mounts + sorted(user_defined, key=lambda m: _depth(m["destination"]))
    spec["annotations"] = spec_annotations(c)
    return spec


def process_args(c: Container, init_binary: str | None = None) -> list[str]:
    """The process's argv: the container's command (entrypoint and cmd), behind
    the init binary with ``--init``. Nothing else of the container goes in it."""
    args = [c.path, *c.args] if c.path else list(c.args)
    if not args:
        raise InvalidArgument("no command specified")
    if c.host_config.get("Init"):
        if init_binary is None:
            raise NotFound("the init binary (tini-static) is not installed: install Debian's tini")
        args = [INIT_PATH, "--", *args]
    return args


def spec_annotations(c: Container) -> dict[str, str]:
    return {"org.skiff.container.name": c.name}


def _depth(path: str) -> int:
    """How many components ``path`` has once cleaned ("/a/./b/../c" has 2)."""
    return len([p for p in posixpath.normpath(path).split("/") if p])


def find_init_binary() -> str | None:
    for path in INIT_BINARIES:
        if os.access(path, os.X_OK):
            return path
    return None
