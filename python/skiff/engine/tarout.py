"""Container files as a tar stream (``GET .../archive``, ``GET .../export``), and the
stat dockerd puts in ``X-Docker-Container-Path-Stat``.

Trees are walked by descriptor (``openat`` from the directory being listed, nothing
followed), parents before children, names in lexical order, as dockerd's tarballer
walks them. Entries are what dockerd writes: mode with the set-id and sticky bits,
numeric owner, whole-second mtime, hard links as links to the first name seen,
``security.capability`` as a PAX xattr record; sockets are skipped. A file that
changes size while it is read (a running container) is cut or padded to the size in
its header, so the stream stays a valid tar.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
import stat
import tarfile
import time
from typing import IO, Any

from skiff.engine.inroot import PATH_FLAGS, Root, join, reopen

log = logging.getLogger("skiff.engine.tarout")

# Go's os.FileMode bits (the "mode" of the path stat header).
GO_DIR = 1 << 31
GO_SYMLINK = 1 << 27
GO_DEVICE = 1 << 26
GO_NAMED_PIPE = 1 << 25
GO_SOCKET = 1 << 24
GO_SETUID = 1 << 23
GO_SETGID = 1 << 22
GO_CHAR_DEVICE = 1 << 21
GO_STICKY = 1 << 20

CHUNK = 256 * 1024
CAPABILITY_XATTR = "security.capability"


def go_file_mode(st_mode: int) -> int:
    """``st_mode`` as Go's ``os.FileMode`` (what dockerd's stat header carries)."""
    mode = st_mode & 0o777
    kind = stat.S_IFMT(st_mode)
    mode |= {
        stat.S_IFDIR: GO_DIR,
        stat.S_IFLNK: GO_SYMLINK,
        stat.S_IFBLK: GO_DEVICE,
        stat.S_IFCHR: GO_DEVICE | GO_CHAR_DEVICE,
        stat.S_IFIFO: GO_NAMED_PIPE,
        stat.S_IFSOCK: GO_SOCKET,
    }.get(kind, 0)
    if st_mode & stat.S_ISUID:
        mode |= GO_SETUID
    if st_mode & stat.S_ISGID:
        mode |= GO_SETGID
    if st_mode & stat.S_ISVTX:
        mode |= GO_STICKY
    return mode


def go_time(ns: int) -> str:
    """A time as Go's JSON writes it (RFC 3339 with trimmed nanoseconds), in UTC."""
    secs, frac = divmod(ns, 1_000_000_000)
    text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs))
    if frac:
        text += "." + f"{frac:09d}".rstrip("0")
    return text + "Z"


def go_base(path: str) -> str:
    """Go's ``filepath.Base``."""
    if path == "":
        return "."
    stripped = path.rstrip("/")
    if stripped == "":
        return "/"
    return stripped.rsplit("/", 1)[-1]


def path_stat(name: str, st: os.stat_result, link_target: str) -> dict[str, Any]:
    return {
        "name": name,
        "size": st.st_size,
        "mode": go_file_mode(st.st_mode),
        "mtime": go_time(st.st_mtime_ns),
        "linkTarget": link_target,
    }


_GO_JSON_ESCAPES = {
    "<": "\\u003c",
    ">": "\\u003e",
    "&": "\\u0026",
    "\u2028": "\\u2028",
    "\u2029": "\\u2029",
}


def encode_stat(entry: dict[str, Any]) -> str:
    """The ``X-Docker-Container-Path-Stat`` header value: base64 of the JSON Go's
    encoder writes (invalid UTF-8 replaced, HTML characters escaped)."""
    clean = {
        k: v.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
        if isinstance(v, str)
        else v
        for k, v in entry.items()
    }
    text = json.dumps(clean, separators=(",", ":"), ensure_ascii=False)
    for char, escape in _GO_JSON_ESCAPES.items():
        text = text.replace(char, escape)
    return base64.b64encode(text.encode()).decode("ascii")


class _Exact:
    """Reads exactly ``size`` bytes of a file: cut when it grew, zero-padded when it
    shrank since its header was written."""

    def __init__(self, fd: int, size: int) -> None:
        self._fd = fd
        self._left = size
        self._eof = False

    def read(self, n: int = -1) -> bytes:
        if n < 0 or n > self._left:
            n = self._left
        if n == 0:
            return b""
        data = b""
        if not self._eof:
            data = os.read(self._fd, n)
            if not data:
                self._eof = True
        if len(data) < n:
            data += bytes(n - len(data))
        self._left -= len(data)
        return data


class TarWriter:
    """Writes tar entries to ``out`` (a binary stream); with a ``root``, the
    container's bind mounts are followed as the container sees them."""

    def __init__(self, out: IO[bytes], root: Root | None = None) -> None:
        self._tar = tarfile.open(  # noqa: SIM115 - closed by close()
            fileobj=out, mode="w|", format=tarfile.PAX_FORMAT, bufsize=CHUNK
        )
        self._root = root
        self._links: dict[tuple[int, int], str] = {}

    def close(self) -> None:
        self._tar.close()

    def add_tree(self, fd: int, path: str, name: str, *, include_top: bool = True) -> None:
        """Adds what the ``O_PATH`` descriptor ``fd`` (container path ``path``) refers
        to as ``name``, and when it is a directory everything below it."""
        top = self._add(fd, name) if include_top else _open_dir(fd)
        if top is None:
            return
        stack = [(iter(self._children(top, path)), top, path, name)]
        try:
            while stack:
                children, dfd, dpath, dname = stack[-1]
                child = next(children, None)
                if child is None:
                    os.close(dfd)
                    stack.pop()
                    continue
                cpath = join(dpath, child)
                cname = f"{dname.rstrip('/')}/{child}" if dname else child
                cfd = self._open_child(dfd, child, cpath)
                if cfd is None:
                    continue
                try:
                    sub = self._add(cfd, cname)
                except OSError as err:  # vanished or unreadable: skipped, as dockerd does
                    log.warning("cannot archive %s: %s", cpath, err)
                    continue
                finally:
                    os.close(cfd)
                if sub is not None:
                    stack.append((iter(self._children(sub, cpath)), sub, cpath, cname))
        finally:
            for _, dfd, _, _ in stack:
                os.close(dfd)

    def _children(self, dfd: int, path: str) -> list[str]:
        if self._root is not None and not self._root.listable(path):
            return []
        try:
            names = set(os.listdir(dfd))
        except OSError as err:
            log.warning("cannot list %s: %s", path, err)
            names = set()
        if self._root is not None:
            names.update(self._root.bind_children(path))
        return sorted(names, key=os.fsencode)

    def _open_child(self, dfd: int, name: str, path: str) -> int | None:
        if self._root is not None:
            bind = self._root.binds.get(path)
            if bind is not None and bind.source is not None:
                with contextlib.suppress(FileNotFoundError):
                    return os.open(bind.source, os.O_PATH | os.O_CLOEXEC)
        try:
            return os.open(name, PATH_FLAGS, dir_fd=dfd)
        except FileNotFoundError:
            return None  # gone meanwhile (a running container)

    def _add(self, fd: int, name: str) -> int | None:
        """Writes the entry for ``fd``; returns a listing descriptor for a directory."""
        st = os.fstat(fd)
        info = tarfile.TarInfo(name)
        info.mode = stat.S_IMODE(st.st_mode)
        info.uid, info.gid = st.st_uid, st.st_gid
        info.uname = info.gname = ""
        info.mtime = int(st.st_mtime)
        mode = st.st_mode
        if stat.S_ISDIR(mode):
            info.type = tarfile.DIRTYPE
            dfd = _open_dir(fd)
            self._tar.addfile(info)
            return dfd
        if stat.S_ISREG(mode):
            key = (st.st_dev, st.st_ino)
            if st.st_nlink > 1:
                first = self._links.get(key)
                if first is not None:
                    info.type = tarfile.LNKTYPE
                    info.linkname = first
                    self._tar.addfile(info)
                    return None
                self._links[key] = name
            self._add_file(fd, info)
            return None
        if stat.S_ISLNK(mode):
            info.type = tarfile.SYMTYPE
            info.linkname = os.readlink("", dir_fd=fd)
        elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
            info.type = tarfile.CHRTYPE if stat.S_ISCHR(mode) else tarfile.BLKTYPE
            info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
        elif stat.S_ISFIFO(mode):
            info.type = tarfile.FIFOTYPE
        else:
            return None  # sockets: dockerd skips them too
        self._tar.addfile(info)
        return None

    def _add_file(self, fd: int, info: tarfile.TarInfo) -> None:
        rfd = reopen(fd, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)
        try:
            st = os.fstat(rfd)
            info.size = st.st_size
            try:
                cap = os.getxattr(rfd, CAPABILITY_XATTR)
            except OSError:
                cap = None
            if cap:
                info.pax_headers = {
                    "SCHILY.xattr." + CAPABILITY_XATTR: cap.decode("utf-8", "surrogateescape")
                }
            self._tar.addfile(info, _Exact(rfd, st.st_size))
        finally:
            os.close(rfd)


def _open_dir(fd: int) -> int:
    return reopen(fd, os.O_RDONLY | os.O_DIRECTORY)
