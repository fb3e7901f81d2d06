"""skiff-runtime as an OCI runtime: the static probe runs in a bundle and reports,
from inside, what the config asked for."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from skiff.errors import Conflict, InvalidArgument, NotFound, SkiffError
from skiff.runtime.driver import Runtime
from tests.support.bundles import BundleFactory, run_json

pytestmark = pytest.mark.root


def test_probe_sees_what_the_config_asked_for(
    runtime: Runtime, bundle: BundleFactory, probe_tar: Path
) -> None:
    def edit(cfg: dict[str, Any]) -> None:
        p = cfg["process"]
        p["env"] = ["PATH=/bin", "HELLO=world"]
        p["cwd"] = "/tmp"
        p["user"] = {"uid": 1000, "gid": 1001, "additionalGids": [5, 7], "umask": 0o027}
        p["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": 123, "hard": 456}]
        p["noNewPrivileges"] = True
        p["oomScoreAdj"] = 250
        caps = ["CAP_KILL", "CAP_NET_BIND_SERVICE"]
        p["capabilities"] = {
            "bounding": caps,
            "effective": caps,
            "permitted": caps,
            "inheritable": caps,
            "ambient": caps,
        }
        cfg["hostname"] = "probe-host"
        cfg["domainname"] = "example.test"

    b = bundle(probe_tar, ["/probe"], edit)
    code, seen, err = run_json(runtime, b)
    assert code == 0, err
    assert seen["pid"] == 1
    assert (seen["uid"], seen["gid"], sorted(seen["groups"])) == (1000, 1001, [5, 7])
    assert seen["env"] == {"PATH": "/bin", "HELLO": "world"}
    assert seen["cwd"] == "/tmp"
    assert seen["umask"] == "0027"
    assert seen["hostname"] == "probe-host" and seen["domainname"] == "example.test"
    assert seen["rlimits"]["RLIMIT_NOFILE"] == {"soft": 123, "hard": 456}
    assert seen["no_new_privs"] is True
    assert seen["oom_score_adj"] == 250
    for name in ("effective", "permitted", "inheritable", "ambient", "bounding"):
        assert sorted(seen["caps"][name]["names"]) == ["CAP_KILL", "CAP_NET_BIND_SERVICE"], name
    host = {n: os.stat(f"/proc/self/ns/{n}").st_ino for n in ("pid", "mnt", "uts", "ipc", "net")}
    for name, inode in host.items():
        assert seen["namespaces"][name] != inode, name
    mounts = {m["mount_point"]: m for m in seen["mounts"]}
    for point in ("/", "/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/sys"):
        assert point in mounts, point
    assert "ro" in mounts["/sys"]["options"].split(",")
    # masked: files get /dev/null bound over them, directories a read-only tmpfs
    assert Path("/proc/keys").exists() and Path("/proc/acpi").is_dir()
    assert (
        mounts["/proc/keys"]["source"] == mounts["/dev"]["source"]
        or mounts["/proc/keys"]["fstype"] == "tmpfs"
    )
    assert mounts["/proc/acpi"]["fstype"] == "tmpfs" and "ro" in mounts["/proc/acpi"][
        "options"
    ].split(",")
    assert "ro" in mounts["/proc/sys"]["options"].split(",")


def test_default_devices_and_links(
    runtime: Runtime, bundle: BundleFactory, busybox_tar: Path
) -> None:
    script = "ls -l /dev/null /dev/zero /dev/full /dev/random /dev/urandom /dev/tty; for l in fd stdin ptmx; do readlink /dev/$l; done; echo x > /dev/null && echo ok"
    b = bundle(busybox_tar, ["/bin/sh", "-c", script])
    out = runtime.run(b.id, b.path)
    text = out.stdout.decode()
    assert out.returncode == 0, out.stderr
    for dev, nums in (
        ("null", "1,   3"),
        ("zero", "1,   5"),
        ("urandom", "1,   9"),
        ("tty", "5,   0"),
    ):
        line = next(ln for ln in text.splitlines() if ln.endswith(f"/dev/{dev}"))
        assert line.startswith("crw-rw-rw-") and nums in line, line
    assert "/proc/self/fd\n/proc/self/fd/0\npts/ptmx\nok" in text


def test_readonly_root_and_bind_mounts(
    runtime: Runtime, bundle: BundleFactory, busybox_tar: Path, tmp_path: Path
) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "in.txt").write_text("from host\n")

    def edit(cfg: dict[str, Any]) -> None:
        cfg["root"]["readonly"] = True
        cfg["mounts"].append(
            {
                "destination": "/data",
                "type": "bind",
                "source": str(shared),
                "options": ["rbind", "rw"],
            }
        )
        cfg["mounts"].append(
            {"destination": "/ro", "type": "bind", "source": str(shared), "options": ["bind", "ro"]}
        )
        cfg["mounts"].append(
            {"destination": "/scratch", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m"]}
        )

    script = "cat /data/in.txt; echo out > /data/out.txt; touch /root-file 2>&1; touch /ro/x 2>&1; echo s > /scratch/s && echo tmpfs-ok"
    b = bundle(busybox_tar, ["/bin/sh", "-c", script], edit)
    out = runtime.run(b.id, b.path)
    text = out.stdout.decode()
    assert "from host" in text
    assert text.count("Read-only file system") == 2
    assert "tmpfs-ok" in text
    assert (shared / "out.txt").read_text() == "out\n"


def test_cgroup_limits_are_seen_inside(
    runtime: Runtime, bundle: BundleFactory, probe_tar: Path
) -> None:
    def edit(cfg: dict[str, Any]) -> None:
        cfg["linux"]["resources"].update(
            {
                "memory": {"limit": 64 * 1024 * 1024},
                "pids": {"limit": 42},
                "cpu": {"shares": 512, "quota": 50000, "period": 100000},
            }
        )

    b = bundle(probe_tar, ["/probe"], edit)
    code, seen, err = run_json(runtime, b)
    assert code == 0, err
    limits = seen["cgroup"]["limits"]
    if "memory.max" in limits:  # cgroup v2
        assert limits["memory.max"] == str(64 * 1024 * 1024)
        assert limits["pids.max"] == "42"
        assert limits["cpu.max"] == "50000 100000"
    else:
        assert limits["memory.limit_in_bytes"] == str(64 * 1024 * 1024)
        assert limits["pids.max"] == "42"
        assert limits["cpu.shares"] == "512"
        assert limits["cpu.cfs_quota_us"] == "50000"


def test_fork_bomb_is_contained_by_the_pids_limit(
    runtime: Runtime, bundle: BundleFactory, busybox_tar: Path
) -> None:
    def edit(cfg: dict[str, Any]) -> None:
        cfg["linux"]["resources"]["pids"] = {"limit": 20}

    # A child shell forks sleeps until fork fails; init then spins without forking.
    spawner = "sh -c 'i=0; while [ $i -lt 100 ]; do sleep 100 & i=$((i+1)); done' 2>/dev/null"
    b = bundle(busybox_tar, ["/bin/sh", "-c", f"{spawner}; while :; do :; done"], edit)
    runtime.create(b.id, b.path)
    runtime.start(b.id)
    counts = []
    deadline = time.monotonic() + 1.5
    while time.monotonic() < deadline:
        counts.append(len(runtime.pids(b.id)))
        time.sleep(0.1)
    # It filled the limit (the spawner, the 20th, exits when its fork fails) and
    # never went past it.
    assert 19 <= max(counts) <= 20, counts
    # The host can still start processes, and the bomb can be stopped.
    assert subprocess.run(["true"]).returncode == 0
    runtime.delete(b.id, force=True)
    assert all(c["id"] != b.id for c in runtime.containers())


def test_memory_hog_is_oom_killed(
    runtime: Runtime, bundle: BundleFactory, busybox_tar: Path
) -> None:
    def edit(cfg: dict[str, Any]) -> None:
        cfg["linux"]["resources"]["memory"] = {"limit": 16 * 1024 * 1024, "swap": 16 * 1024 * 1024}

    b = bundle(busybox_tar, ["/bin/dd", "if=/dev/zero", "of=/dev/null", "bs=128M", "count=1"], edit)
    runtime.create(b.id, b.path)
    runtime.start(b.id)
    deadline = time.monotonic() + 30
    while runtime.state(b.id)["status"] != "stopped":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    state = runtime.state(b.id)
    assert state["oomKilled"] is True
    runtime.delete(b.id)


def test_lifecycle_create_start_state_kill_delete(
    runtime: Runtime, bundle: BundleFactory, probe_tar: Path, tmp_path: Path
) -> None:
    b = bundle(probe_tar, ["/probe", "--sleep", "60"])
    pid_file = tmp_path / "init.pid"
    runtime.create(b.id, b.path, pid_file=pid_file)
    st = runtime.state(b.id)
    assert st["status"] == "created"
    pid = int(pid_file.read_text())
    assert st["pid"] == pid and st["bundle"] == str(b.path) and st["ociVersion"].startswith("1.")
    assert st["rootfs"] == str(b.rootfs) and st["created"]
    # init waits for start: it has not exec'd the probe yet
    assert Path(f"/proc/{pid}/exe").resolve().name == "skiff-runtime"
    assert any(c["id"] == b.id and c["status"] == "created" for c in runtime.containers())
    with pytest.raises(Conflict):
        runtime.create(b.id, b.path)
    runtime.start(b.id)
    assert runtime.state(b.id)["status"] == "running"
    with pytest.raises(Conflict):
        runtime.start(b.id)
    with pytest.raises(Conflict):
        runtime.delete(b.id)
    assert runtime.pids(b.id) == [pid]
    runtime.pause(b.id)
    assert runtime.state(b.id)["status"] == "paused"
    runtime.resume(b.id)
    assert runtime.state(b.id)["status"] == "running"
    runtime.kill(b.id, "TERM")
    deadline = time.monotonic() + 10
    while runtime.state(b.id)["status"] != "stopped":
        assert time.monotonic() < deadline
        time.sleep(0.02)
    with pytest.raises(Conflict):
        runtime.kill(b.id, "KILL")
    runtime.delete(b.id)
    with pytest.raises(NotFound):
        runtime.state(b.id)
    runtime.delete(b.id, force=True)  # forced delete of nothing is fine, like runc


def test_delete_force_kills_a_running_container(
    runtime: Runtime, bundle: BundleFactory, busybox_tar: Path
) -> None:
    b = bundle(busybox_tar, ["/bin/sh", "-c", "sleep 100 & sleep 100"])
    runtime.create(b.id, b.path)
    runtime.start(b.id)
    pids = []
    deadline = time.monotonic() + 10
    while len(pids) < 2:
        assert time.monotonic() < deadline
        pids = runtime.pids(b.id)
        time.sleep(0.02)
    runtime.delete(b.id, force=True)
    time.sleep(0.1)
    assert not any(
        Path(f"/proc/{p}").exists()
        and "sleep" in Path(f"/proc/{p}/cmdline").read_text(errors="replace")
        for p in pids
    )
    assert all(c["id"] != b.id for c in runtime.containers())


def test_exec_joins_the_container(
    runtime: Runtime, bundle: BundleFactory, busybox_tar: Path
) -> None:
    b = bundle(busybox_tar, ["/bin/sleep", "60"], hostname="exec-box")
    runtime.create(b.id, b.path)
    runtime.start(b.id)
    process = {
        "args": ["/bin/sh", "-c", "hostname; echo $FOO; id -u; exit 7"],
        "env": ["FOO=bar", "PATH=/bin"],
        "cwd": "/",
        "user": {"uid": 33, "gid": 33},
    }
    out = runtime.exec(b.id, process)
    assert out.returncode == 7, out.stderr
    assert out.stdout.decode().split() == ["exec-box", "bar", "33"]
    with pytest.raises(SkiffError, match="no such file or directory"):
        runtime.exec(b.id, {"args": ["/nope"], "cwd": "/"})
    runtime.delete(b.id, force=True)


def test_seccomp_denies_what_the_profile_denies(
    runtime: Runtime, bundle: BundleFactory, busybox_tar: Path
) -> None:
    profile = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [
            {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1},
            {"names": ["sethostname"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38},
        ],
    }

    def edit(cfg: dict[str, Any]) -> None:
        cfg["linux"]["seccomp"] = profile

    script = "mkdir /tmp/d 2>&1; grep Seccomp: /proc/self/status; touch /tmp/f && echo touch-ok"
    b = bundle(busybox_tar, ["/bin/sh", "-c", script], edit)
    out = runtime.run(b.id, b.path)
    text = out.stdout.decode()
    assert "Operation not permitted" in text
    assert "Seccomp:\t2" in text
    assert "touch-ok" in text


def test_hooks_get_the_state(
    runtime: Runtime, bundle: BundleFactory, busybox_tar: Path, tmp_path: Path
) -> None:
    record = tmp_path / "hooks.log"
    hook = tmp_path / "hook.sh"
    hook.write_text(f'#!/bin/sh\necho "$1 $(cat)" >> {record}\n')
    hook.chmod(0o755)

    def edit(cfg: dict[str, Any]) -> None:
        cfg["hooks"] = {
            name: [{"path": str(hook), "args": ["hook.sh", name]}]
            for name in ("prestart", "createRuntime", "poststart", "poststop")
        }

    b = bundle(busybox_tar, ["/bin/true"], edit)
    out = runtime.run(b.id, b.path)
    assert out.returncode == 0, out.stderr
    lines = record.read_text().splitlines()
    names = [ln.split(" ", 1)[0] for ln in lines]
    assert names == ["prestart", "createRuntime", "poststart", "poststop"]
    states = [json.loads(ln.split(" ", 1)[1]) for ln in lines]
    assert all(s["id"] == b.id for s in states)
    assert states[0]["status"] == "creating" and states[0]["pid"] > 0


def test_hook_timeout_fails_create_and_leaves_nothing(
    runtime: Runtime, bundle: BundleFactory, busybox_tar: Path
) -> None:
    def edit(cfg: dict[str, Any]) -> None:
        cfg["hooks"] = {
            "createRuntime": [{"path": "/bin/sleep", "args": ["sleep", "10"], "timeout": 1}]
        }

    b = bundle(busybox_tar, ["/bin/true"], edit)
    with pytest.raises(SkiffError, match="timed out"):
        runtime.create(b.id, b.path)
    assert all(c["id"] != b.id for c in runtime.containers())
    assert not (Path(runtime.root) / b.id).exists()


@pytest.mark.parametrize(
    ("edit", "error", "match"),
    [
        (lambda c: c.pop("process"), InvalidArgument, "process is missing"),
        (lambda c: c["root"].update(path="/nonexistent/rootfs"), SkiffError, r"root\.path"),
        (
            lambda c: c["mounts"].append({"destination": "rel", "type": "tmpfs"}),
            InvalidArgument,
            "not absolute",
        ),
        (
            lambda c: c["linux"]["namespaces"].append({"type": "bogus"}),
            InvalidArgument,
            "unknown namespace",
        ),
        (
            lambda c: c["process"]["capabilities"]["effective"].append("CAP_BOGUS"),
            InvalidArgument,
            "unknown capability",
        ),
        (
            lambda c: c["process"].update(rlimits=[{"type": "RLIMIT_NOPE", "soft": 1, "hard": 1}]),
            InvalidArgument,
            "unknown rlimit",
        ),
        (
            lambda c: c["process"].update(args=["/no/such/binary"]),
            SkiffError,
            "no such file or directory",
        ),
        (
            lambda c: c["mounts"].append(
                {"destination": "/x", "type": "bind", "source": "/nonexistent", "options": ["bind"]}
            ),
            SkiffError,
            "/nonexistent",
        ),
        (
            lambda c: c["linux"].update(seccomp={"defaultAction": "SCMP_ACT_BOGUS"}),
            InvalidArgument,
            "SCMP_ACT_BOGUS",
        ),
    ],
)
def test_bad_configs_fail_clearly_and_leave_nothing(
    runtime: Runtime,
    bundle: BundleFactory,
    busybox_tar: Path,
    edit: Any,
    error: type[Exception],
    match: str,
) -> None:
    b = bundle(busybox_tar, ["/bin/true"], edit)
    with pytest.raises(error, match=match):
        runtime.create(b.id, b.path)
    assert not (Path(runtime.root) / b.id).exists()
    assert all(c["id"] != b.id for c in runtime.containers())


def test_malformed_config_json(runtime: Runtime, bundle: BundleFactory, busybox_tar: Path) -> None:
    b = bundle(busybox_tar, ["/bin/true"])
    (b.path / "config.json").write_text("{not json")
    with pytest.raises(InvalidArgument, match=r"config\.json"):
        runtime.create(b.id, b.path)
    assert not (Path(runtime.root) / b.id).exists()


def test_terminal_goes_to_the_console_socket(
    runtime: Runtime, bundle: BundleFactory, busybox_tar: Path, tmp_path: Path
) -> None:
    sock_path = tmp_path / "console.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(sock_path))
    server.listen(1)

    def edit(cfg: dict[str, Any]) -> None:
        cfg["process"]["terminal"] = True
        cfg["process"]["consoleSize"] = {"height": 33, "width": 111}

    b = bundle(busybox_tar, ["/bin/sh", "-c", "tty; stty size; read line; echo got:$line"], edit)
    try:
        runtime.create(b.id, b.path, console_socket=sock_path)
        conn, _ = server.accept()
        _, ancdata, _, _ = conn.recvmsg(64, socket.CMSG_SPACE(4))
        master = int.from_bytes(ancdata[0][2][:4], "little")
        conn.close()
        runtime.start(b.id)
        os.write(master, b"hello\n")
        output = b""
        deadline = time.monotonic() + 10
        while b"got:hello" not in output and time.monotonic() < deadline:
            try:
                output += os.read(master, 4096)
            except OSError:
                break
        os.close(master)
        assert b"/dev/pts/0" in output
        assert b"33 111" in output
        assert b"got:hello" in output
    finally:
        server.close()


def test_runtime_cli_basics() -> None:
    from skiff.runtime.binary import find_runtime

    rt = str(find_runtime())
    features = json.loads(subprocess.run([rt, "features"], capture_output=True, check=True).stdout)
    assert "SCMP_ACT_ERRNO" in features["linux"]["seccomp"]["actions"]
    assert "network" in features["linux"]["namespaces"]
    bad = subprocess.run([rt, "frobnicate", "x"], capture_output=True)
    assert bad.returncode == 2
    assert b"unknown command" in bad.stderr


def test_user_namespace_maps_root(runtime: Runtime, bundle: BundleFactory, probe_tar: Path) -> None:
    def edit(cfg: dict[str, Any]) -> None:
        cfg["linux"]["namespaces"].append({"type": "user"})
        cfg["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 200000, "size": 65536}]
        cfg["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 200000, "size": 65536}]

    b = bundle(probe_tar, ["/probe"], edit)
    b.path.parent.chmod(0o755)  # the mapped root (host uid 200000) must reach the rootfs
    code, seen, err = run_json(runtime, b)
    assert code == 0, err
    assert (seen["uid"], seen["gid"]) == (0, 0)
    assert seen["namespaces"]["user"] != os.stat("/proc/self/ns/user").st_ino


def test_overlay_mount(
    runtime: Runtime, bundle: BundleFactory, busybox_tar: Path, tmp_path: Path
) -> None:
    lower, upper, work = (tmp_path / n for n in ("lower", "upper", "work"))
    for d in (lower, upper, work):
        d.mkdir()
    (lower / "low.txt").write_text("from lower\n")

    def edit(cfg: dict[str, Any]) -> None:
        cfg["mounts"].append(
            {
                "destination": "/ov",
                "type": "overlay",
                "source": "overlay",
                "options": [f"lowerdir={lower}", f"upperdir={upper}", f"workdir={work}"],
            }
        )

    b = bundle(
        busybox_tar,
        ["/bin/sh", "-c", "cat /ov/low.txt; echo new > /ov/new.txt; rm /ov/low.txt"],
        edit,
    )
    out = runtime.run(b.id, b.path)
    assert out.returncode == 0, out.stderr
    assert out.stdout == b"from lower\n"
    assert (upper / "new.txt").read_text() == "new\n"
    assert (lower / "low.txt").exists()  # the deletion is a whiteout in upper
    assert (upper / "low.txt").is_char_device()


def test_no_pivot_sysctl_and_config_devices(
    runtime: Runtime, bundle: BundleFactory, busybox_tar: Path, tmp_path: Path
) -> None:
    def edit(cfg: dict[str, Any]) -> None:
        cfg["linux"]["sysctl"] = {"net.ipv4.ip_forward": "1"}
        cfg["linux"]["devices"] = [
            {
                "type": "c",
                "path": "/dev/mynull",
                "major": 1,
                "minor": 3,
                "fileMode": 0o600,
                "uid": 0,
                "gid": 0,
            }
        ]

    script = "cat /proc/sys/net/ipv4/ip_forward; ls -l /dev/mynull; echo x > /dev/mynull && echo dev-ok; cat /proc/self/mountinfo | grep -c ' / / '"
    b = bundle(busybox_tar, ["/bin/sh", "-c", script], edit)
    out_file = tmp_path / "out"
    with out_file.open("wb") as out:
        runtime.create(b.id, b.path, no_pivot=True, stdout=out)
    runtime.start(b.id)
    deadline = time.monotonic() + 10
    while runtime.state(b.id)["status"] != "stopped":
        assert time.monotonic() < deadline
        time.sleep(0.02)
    runtime.delete(b.id)
    lines = out_file.read_text().splitlines()
    assert lines[0] == "1"
    assert lines[1].startswith("crw-------") and lines[1].endswith("/dev/mynull")
    assert lines[2] == "dev-ok"
    assert Path("/proc/sys/net/ipv4/ip_forward").read_text().strip() in (
        "0",
        "1",
    )  # the host's is untouched


def test_container_hooks_run_inside(
    runtime: Runtime, bundle: BundleFactory, busybox_tar: Path, tmp_path: Path
) -> None:
    record = tmp_path / "create-container.json"
    hook = tmp_path / "cc.sh"
    hook.write_text(f"#!/bin/sh\ncat > {record}\n")
    hook.chmod(0o755)

    def edit(cfg: dict[str, Any]) -> None:
        cfg["hooks"] = {
            "createContainer": [{"path": str(hook)}],
            "startContainer": [
                {"path": "/bin/sh", "args": ["sh", "-c", "hostname > /tmp/started-in"]}
            ],
        }

    b = bundle(busybox_tar, ["/bin/cat", "/tmp/started-in"], edit, hostname="hooked")
    out = runtime.run(b.id, b.path)
    assert out.returncode == 0, out.stderr
    assert out.stdout == b"hooked\n"  # startContainer ran in the container, before the process
    assert json.loads(record.read_text())["id"] == b.id


def test_update_changes_limits_of_a_running_container(
    runtime: Runtime, bundle: BundleFactory, busybox_tar: Path
) -> None:
    b = bundle(busybox_tar, ["/bin/sleep", "60"])
    runtime.create(b.id, b.path)
    runtime.start(b.id)
    runtime.update(b.id, {"pids": {"limit": 33}, "memory": {"limit": 100 * 1024 * 1024}})
    read = {
        "args": [
            "/bin/sh",
            "-c",
            "cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids.max",
        ],
        "cwd": "/",
    }
    out = runtime.exec(b.id, read)
    assert out.stdout.decode().strip() == "33"
    runtime.delete(b.id, force=True)


def test_runs_its_own_default_spec(
    runtime: Runtime, bundle: BundleFactory, busybox_tar: Path
) -> None:
    """`skiff-runtime spec` (runc's defaults: ambient capabilities that are not
    inheritable, read-only root, no terminal here) gives a config that runs."""
    b = bundle(busybox_tar, ["/bin/true"])
    (b.path / "config.json").unlink()
    subprocess.run([str(runtime.binary), "spec", "--bundle", str(b.path)], check=True)
    cfg = json.loads((b.path / "config.json").read_text())
    cfg["process"].update(
        terminal=False, args=["/bin/sh", "-c", "echo spec-ok; touch /x 2>&1; true"]
    )
    cfg["linux"]["cgroupsPath"] = b.config["linux"]["cgroupsPath"]
    b.config = cfg
    b.write()
    out = runtime.run(b.id, b.path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.decode().splitlines() == ["spec-ok", "touch: /x: Read-only file system"]
    assert (
        subprocess.run(
            [str(runtime.binary), "spec", "--bundle", str(b.path)], capture_output=True
        ).returncode
        == 1
    )


def test_joins_a_network_namespace_by_path(
    runtime: Runtime, bundle: BundleFactory, probe_tar: Path
) -> None:
    name = f"skiff-t-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        path = f"/run/netns/{name}"

        def edit(cfg: dict[str, Any]) -> None:
            cfg["linux"]["namespaces"] = [
                n for n in cfg["linux"]["namespaces"] if n["type"] != "network"
            ]
            cfg["linux"]["namespaces"].append({"type": "network", "path": path})

        b = bundle(probe_tar, ["/probe"], edit)
        code, seen, err = run_json(runtime, b)
        assert code == 0, err
        assert seen["namespaces"]["net"] == os.stat(path).st_ino
    finally:
        subprocess.run(["ip", "netns", "delete", name], check=False)
