"""Extracting a tar stream into a directory of a container (``PUT .../archive``).

The stream may be plain, gzip, bzip2 or xz, as docker accepts. Entries land below the
destination directory and nowhere else:

- names are cleaned (a leading ``/`` dropped); a name that climbs out (``../x``) is
  refused;
- each entry's parent is looked up from the destination the way the container
  resolves paths (:mod:`skiff.engine.inroot`: symlinks followed, absolute ones from
  the container's root), and must still lie below the destination — a symlink leading
  elsewhere (``/etc``, ``../../..``) is refused, so no entry can be written through
  it; missing parents are created (0755, root);
- a hard link's target is looked up the same way; a symlink entry is written as it
  is (it is data: where it leads only matters when something follows it);
- an existing entry is replaced unless both are directories (then merged);
  ``allow_overwrite_dir_with_file=False`` refuses replacing a directory by a
  non-directory and the reverse (``noOverwriteDirNonDir``); mount points are never
  removed: a file bind-mounted at the target is rewritten in place;
- owners are the tar's (or the container user's with ``copyUIDGID``), modes and
  times are the tar's, directory times set last; xattrs: ``user.*`` and
  ``security.capability`` only.

Entries written before a refused one stay, as with dockerd.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import posixpath
import stat
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass

from skiff.engine.inroot import (
    PATH_FLAGS,
    Node,
    Root,
    Walk,
    is_within,
    join,
    proc_path,
)
from skiff.errors import InvalidArgument

CHUNK = 1024 * 1024
XATTR_PREFIX = "SCHILY.xattr."


class ExtractError(InvalidArgument):
    """The archive cannot be extracted where it was sent (bad or hostile entries)."""


@dataclass
class ExtractOptions:
    allow_overwrite_dir_with_file: bool = True
    #: (uid, gid) for every entry instead of the tar's
    owner: tuple[int, int] | None = None


class Extractor:
    """Extracts into the directory at the end of ``dest`` (a walk from the container's
    root, which stays the caller's)."""

    def __init__(self, root: Root, dest: Sequence[Node], options: ExtractOptions) -> None:
        self.root = root
        self.dest = list(dest)
        self.dest_path = self.dest[-1].path
        self.options = options
        self._dirs: list[tuple[str, int]] = []
        self._cached: tuple[str, Walk] | None = None

    def run(self, stream: io.RawIOBase) -> int:
        """Extracts the whole stream; returns the number of entries written."""
        buffered = io.BufferedReader(stream, CHUNK)
        if not buffered.peek(1):
            return 0  # an empty body: nothing to do (dockerd: the same)
        count = 0
        try:
            try:
                tar = tarfile.open(fileobj=buffered, mode="r|*")  # noqa: SIM115
            except tarfile.TarError as err:
                raise ExtractError(f"invalid tar archive: {err}") from None
            with tar:
                while True:
                    try:
                        member = tar.next()
                    except tarfile.TarError as err:
                        raise ExtractError(f"invalid tar archive: {err}") from None
                    except EOFError:
                        raise ExtractError("invalid tar archive: unexpected end of data") from None
                    if member is None:
                        break
                    if self._entry(tar, member):
                        count += 1
            self._set_dir_times()
        finally:
            self._drop_cache()
        return count

    # ------------------------------------------------------------------ entries

    def _entry(self, tar: tarfile.TarFile, member: tarfile.TarInfo) -> bool:
        name = posixpath.normpath(member.name.lstrip("/")) if member.name.strip("/") else "."
        if name == ".":
            return False
        if name == ".." or name.startswith("../"):
            raise ExtractError(f"invalid entry name {member.name!r}: it leads out of the directory")
        if not (
            member.isreg()
            or member.isdir()
            or member.issym()
            or member.islnk()
            or member.ischr()
            or member.isblk()
            or member.isfifo()
        ):
            raise ExtractError(f"{member.name!r}: unhandled tar header type {member.type!r}")
        parent_rel, _, base = name.rpartition("/")
        parent = self._parent(parent_rel, member.name)
        here = join(parent.path, base)
        self._check_writable(here)
        try:
            self._place(tar, member, name, parent, base, here)
        except OSError as err:
            raise ExtractError(f"{member.name}: {err.strerror or err}") from None
        except tarfile.TarError as err:
            raise ExtractError(f"invalid tar archive: {err}") from None
        return True

    def _parent(self, rel: str, entry: str) -> Node:
        """The directory an entry goes in, created when missing."""
        if self._cached is not None and self._cached[0] == rel:
            return self._cached[1].node
        self._drop_cache()
        try:
            walk = self.root.walk(rel, follow=True, start=self.dest, missing_ok=True)
        except OSError as err:
            raise ExtractError(f"{entry}: {err.strerror or err}") from None
        try:
            if not is_within(walk.node.path, self.dest_path):
                raise ExtractError(
                    f"{entry!r} leads out of {self.dest_path} (through a symlink to "
                    f"{walk.node.path})"
                )
            if walk.rest:
                self._make_parents(walk, entry)
            if not stat.S_ISDIR(walk.node.stat().st_mode):
                raise ExtractError(f"{entry}: {os.strerror(errno.ENOTDIR)}")
        except BaseException:
            walk.close()
            raise
        self._cached = (rel, walk)
        return walk.node

    def _make_parents(self, walk: Walk, entry: str) -> None:
        for comp in walk.rest:
            if comp in ("", "."):
                continue
            if comp == "..":
                raise ExtractError(f"{entry}: {os.strerror(errno.ENOENT)}")
            node = walk.node
            here = join(node.path, comp)
            self._check_writable(here)
            try:
                # Made meanwhile is fine: it must be a directory (checked below).
                with contextlib.suppress(FileExistsError):
                    os.mkdir(comp, 0o755, dir_fd=node.fd)
                fd = os.open(comp, PATH_FLAGS, dir_fd=node.fd)
            except OSError as err:
                raise ExtractError(f"{entry}: {err.strerror or err}") from None
            walk.stack.append(Node(fd, here))
            if not stat.S_ISDIR(os.fstat(fd).st_mode):
                raise ExtractError(f"{entry}: {os.strerror(errno.ENOTDIR)}")
        walk.rest = []

    def _drop_cache(self) -> None:
        if self._cached is not None:
            self._cached[1].close()
            self._cached = None

    def _check_writable(self, path: str) -> None:
        if not self.root.writable(path):
            raise ExtractError(f"{path}: {os.strerror(errno.EROFS)}")

    def _place(
        self,
        tar: tarfile.TarFile,
        member: tarfile.TarInfo,
        name: str,
        parent: Node,
        base: str,
        here: str,
    ) -> None:
        bind = self.root.binds.get(here)
        existing: os.stat_result | None
        try:
            if bind is not None and bind.source is not None:
                existing = os.stat(bind.source)
            else:
                existing = os.stat(base, dir_fd=parent.fd, follow_symlinks=False)
        except FileNotFoundError:
            existing, bind = None, None
        if existing is not None:
            is_dir = stat.S_ISDIR(existing.st_mode)
            if not self.options.allow_overwrite_dir_with_file:
                if is_dir and not member.isdir():
                    raise ExtractError(
                        f"cannot overwrite directory {name!r} with non-directory {self.dest_path!r}"
                    )
                if not is_dir and member.isdir():
                    raise ExtractError(
                        f"cannot overwrite non-directory {name!r} with directory {self.dest_path!r}"
                    )
            if bind is not None and bind.source is not None:
                if is_dir and member.isdir():
                    self._metadata(os.open(bind.source, os.O_PATH | os.O_CLOEXEC), member)
                    return
                if stat.S_ISREG(existing.st_mode) and member.isreg():
                    fd = os.open(bind.source, os.O_WRONLY | os.O_TRUNC | os.O_CLOEXEC)
                    self._write_file(tar, member, fd)
                    return
                raise OSError(errno.EBUSY, os.strerror(errno.EBUSY))
            if not (is_dir and member.isdir()):
                if self.root.busy(here):
                    raise OSError(errno.EBUSY, os.strerror(errno.EBUSY))
                _remove_all(parent.fd, base)
                self._drop_cache_below(here)
            else:
                fd = os.open(base, PATH_FLAGS, dir_fd=parent.fd)
                self._metadata(fd, member)
                self._dirs.append((name, _mtime_ns(member)))
                return
        mode = member.mode & 0o7777
        if member.isdir():
            os.mkdir(base, 0o700, dir_fd=parent.fd)
            self._metadata(os.open(base, PATH_FLAGS, dir_fd=parent.fd), member)
            self._dirs.append((name, _mtime_ns(member)))
        elif member.isreg():
            fd = os.open(
                base,
                os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                0o600,
                dir_fd=parent.fd,
            )
            self._write_file(tar, member, fd)
        elif member.issym():
            os.symlink(member.linkname, base, dir_fd=parent.fd)
            uid, gid = self._owner(member)
            os.chown(base, uid, gid, dir_fd=parent.fd, follow_symlinks=False)
            os.utime(base, ns=(_mtime_ns(member),) * 2, dir_fd=parent.fd, follow_symlinks=False)
        elif member.islnk():
            self._hardlink(member, parent, base)
        elif member.ischr() or member.isblk():
            kind = stat.S_IFCHR if member.ischr() else stat.S_IFBLK
            os.mknod(
                base,
                mode & 0o777 | kind,
                os.makedev(member.devmajor, member.devminor),
                dir_fd=parent.fd,
            )
            self._metadata(os.open(base, PATH_FLAGS, dir_fd=parent.fd), member, times=True)
        elif member.isfifo():
            os.mkfifo(base, mode & 0o777, dir_fd=parent.fd)
            self._metadata(os.open(base, PATH_FLAGS, dir_fd=parent.fd), member, times=True)

    def _drop_cache_below(self, path: str) -> None:
        if self._cached is not None and is_within(self._cached[1].node.path, path):
            self._drop_cache()

    def _owner(self, member: tarfile.TarInfo) -> tuple[int, int]:
        return self.options.owner or (member.uid, member.gid)

    def _write_file(self, tar: tarfile.TarFile, member: tarfile.TarInfo, fd: int) -> None:
        """Writes the member's data to ``fd`` (a new or truncated regular file), then
        its owner, mode, xattrs and times; closes ``fd``."""
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise OSError(errno.EINVAL, "not a regular file")
            src = tar.extractfile(member)
            if src is not None:
                while True:
                    data = src.read(CHUNK)
                    if not data:
                        break
                    view = memoryview(data)
                    while view:
                        n = os.write(fd, view)
                        view = view[n:]
            uid, gid = self._owner(member)
            os.fchown(fd, uid, gid)
            os.fchmod(fd, member.mode & 0o7777)
            self._xattrs(fd, member)
            os.utime(fd, ns=(_mtime_ns(member),) * 2)
        finally:
            os.close(fd)

    def _metadata(self, fd: int, member: tarfile.TarInfo, *, times: bool = False) -> None:
        """Owner, mode and xattrs (times too with ``times``) of a new non-symlink,
        through its ``O_PATH`` descriptor ``fd``, which this closes."""
        try:
            if stat.S_ISLNK(os.fstat(fd).st_mode):
                raise OSError(errno.ELOOP, "replaced by a symlink meanwhile")
            path = proc_path(fd)
            uid, gid = self._owner(member)
            os.chown(path, uid, gid)
            os.chmod(path, member.mode & 0o7777)
            self._xattrs(path, member)
            if times:
                os.utime(path, ns=(_mtime_ns(member),) * 2)
        finally:
            os.close(fd)

    @staticmethod
    def _xattrs(target: int | str, member: tarfile.TarInfo) -> None:
        for key, value in member.pax_headers.items():
            if not key.startswith(XATTR_PREFIX):
                continue
            attr = key[len(XATTR_PREFIX) :]
            if not (attr.startswith("user.") or attr == "security.capability"):
                continue
            try:
                os.setxattr(target, attr, value.encode("utf-8", "surrogateescape"))
            except OSError as err:
                if err.errno not in (errno.ENOTSUP, errno.EPERM):
                    raise

    def _hardlink(self, member: tarfile.TarInfo, parent: Node, base: str) -> None:
        target = posixpath.normpath(member.linkname.lstrip("/")) if member.linkname else "."
        if target == "." or target == ".." or target.startswith("../"):
            raise ExtractError(f"invalid hardlink target {member.linkname!r} of {member.name!r}")
        link_parent, _, link_base = target.rpartition("/")
        walk = self.root.walk(link_parent, follow=True, start=self.dest)
        try:
            if not is_within(walk.node.path, self.dest_path):
                raise ExtractError(
                    f"hardlink target {member.linkname!r} of {member.name!r} leads out of "
                    f"{self.dest_path}"
                )
            os.link(
                link_base,
                base,
                src_dir_fd=walk.node.fd,
                dst_dir_fd=parent.fd,
                follow_symlinks=False,
            )
        finally:
            walk.close()

    def _set_dir_times(self) -> None:
        self._drop_cache()
        for name, mtime in reversed(self._dirs):
            try:
                walk = self.root.walk(name, start=self.dest)
            except OSError:
                continue
            try:
                node = walk.node
                if is_within(node.path, self.dest_path) and stat.S_ISDIR(node.stat().st_mode):
                    os.utime(proc_path(node.fd), ns=(mtime, mtime))
            finally:
                walk.close()


def _mtime_ns(member: tarfile.TarInfo) -> int:
    return int(member.mtime * 1_000_000_000)


def _remove_all(parent_fd: int, name: str) -> None:
    """Removes ``name`` in ``parent_fd`` and, for a directory, everything below it,
    never following a symlink."""
    st = os.stat(name, dir_fd=parent_fd, follow_symlinks=False)
    if not stat.S_ISDIR(st.st_mode):
        os.unlink(name, dir_fd=parent_fd)
        return
    fd = os.open(
        name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent_fd
    )
    try:
        for child in os.listdir(fd):
            _remove_all(fd, child)
    finally:
        os.close(fd)
    os.rmdir(name, dir_fd=parent_fd)
