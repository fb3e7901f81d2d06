"""Test images built locally, with no network.

- a busybox root filesystem tar from Debian's ``busybox-static``: ``/bin/busybox``, one
  symlink per applet (as ``busybox --list-full`` names them), ``/etc/passwd`` and
  ``/etc/group``, and the usual empty directories;
- the static probe (``rust/probe``) built with ``+crt-static`` for the host target,
  which run as a container's process prints as JSON what it sees.

Tars are written deterministically (sorted, fixed mtime, owner 0:0) so the same inputs
give the same digest.
"""

from __future__ import annotations

import io
import os
import subprocess
import tarfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BUSYBOX = Path("/bin/busybox")
MTIME = 1_700_000_000

PASSWD = """root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
bin:x:2:2:bin:/bin:/bin/false
sys:x:3:3:sys:/dev:/bin/false
www-data:x:33:33:www-data:/var/www:/bin/false
operator:x:37:37:Operator:/var:/bin/false
nobody:x:65534:65534:nobody:/home:/bin/false
"""

GROUP = """root:x:0:
daemon:x:1:
bin:x:2:
sys:x:3:
adm:x:4:
tty:x:5:
disk:x:6:
wheel:x:10:root
www-data:x:33:
users:x:100:
nogroup:x:65534:
"""

DIRS = {
    "bin": 0o755,
    "dev": 0o755,
    "etc": 0o755,
    "home": 0o755,
    "proc": 0o555,
    "root": 0o700,
    "sbin": 0o755,
    "sys": 0o555,
    "tmp": 0o1777,
    "usr": 0o755,
    "usr/bin": 0o755,
    "usr/sbin": 0o755,
    "var": 0o755,
    "var/spool": 0o755,
    "var/www": 0o755,
}


def _info(name: str, kind: bytes, mode: int, size: int = 0) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.size = size
    info.mtime = MTIME
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    return info


class _TarBuilder:
    def __init__(self) -> None:
        self.entries: dict[str, tuple[tarfile.TarInfo, bytes | None]] = {}

    def dir(self, name: str, mode: int = 0o755) -> None:
        self.entries[name] = (_info(name, tarfile.DIRTYPE, mode), None)

    def file(self, name: str, data: bytes, mode: int = 0o644) -> None:
        self.entries[name] = (_info(name, tarfile.REGTYPE, mode, len(data)), data)

    def symlink(self, name: str, target: str) -> None:
        info = _info(name, tarfile.SYMTYPE, 0o777)
        info.linkname = target
        self.entries[name] = (info, None)

    def write(self, path: Path) -> Path:
        tmp = path.with_suffix(path.suffix + ".part")
        with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tar:
            for name in sorted(self.entries):
                info, data = self.entries[name]
                tar.addfile(info, io.BytesIO(data) if data is not None else None)
        tmp.rename(path)
        return path


def busybox_applets() -> list[str]:
    out = subprocess.run([str(BUSYBOX), "--list-full"], check=True, capture_output=True, text=True)
    return [line.strip() for line in out.stdout.splitlines() if line.strip()]


def build_busybox_tar(dest: Path) -> Path:
    """Writes the busybox root filesystem as a tar at ``dest``."""
    if not BUSYBOX.is_file():
        raise RuntimeError(
            "Debian's busybox-static is not installed (/bin/busybox): run the setup command"
        )
    tar = _TarBuilder()
    for name, mode in DIRS.items():
        tar.dir(name, mode)
    tar.file("bin/busybox", BUSYBOX.read_bytes(), 0o755)
    for applet in busybox_applets():
        if applet != "bin/busybox":
            tar.symlink(applet, "/bin/busybox")
    tar.file("etc/passwd", PASSWD.encode())
    tar.file("etc/group", GROUP.encode())
    return tar.write(dest)


def host_target() -> str:
    out = subprocess.run(["rustc", "-vV"], check=True, capture_output=True, text=True).stdout
    for line in out.splitlines():
        if line.startswith("host:"):
            return line.split(":", 1)[1].strip()
    raise RuntimeError("rustc -vV names no host target")


def build_probe() -> Path:
    """Builds the static probe (a no-op when it is up to date) and returns its path."""
    target = host_target()
    env = {**os.environ, "RUSTFLAGS": "-C target-feature=+crt-static"}
    subprocess.run(
        [
            "cargo",
            "build",
            "--quiet",
            "--release",
            "-p",
            "skiff-probe",
            "--target",
            target,
            "--target-dir",
            str(REPO / "target" / "static"),
        ],
        check=True,
        cwd=REPO,
        env=env,
    )
    return REPO / "target" / "static" / target / "release" / "skiff-probe"


def build_probe_tar(dest: Path, probe: Path) -> Path:
    """A root filesystem holding only the probe at ``/probe`` and empty mount points."""
    tar = _TarBuilder()
    for name in ("dev", "etc", "proc", "sys", "tmp"):
        tar.dir(name, 0o1777 if name == "tmp" else 0o755)
    tar.file("probe", probe.read_bytes(), 0o755)
    tar.file("etc/passwd", PASSWD.encode())
    tar.file("etc/group", GROUP.encode())
    return tar.write(dest)
