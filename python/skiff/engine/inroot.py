"""Paths inside a container's filesystem, resolved the way the container resolves them
and never outside it.

A :class:`Root` holds a descriptor of the container's root directory (its overlay
mount) and the container's mounts. Every lookup walks one component at a time with
``openat(O_PATH | O_NOFOLLOW)`` from a descriptor it holds and follows symlinks itself:
an absolute target starts again at the container's root and ``..`` never climbs above
it — openat2's ``RESOLVE_IN_ROOT``, so a symlink to ``/etc`` or ``../../..`` inside the
container stays inside it. No path string of the host is ever built from container
data.

Bind mounts (volumes, binds, the container's hostname/hosts/resolv.conf files) are
followed by path: reaching a bind's destination goes on in its source on the host,
as the container's own mount namespace would, so a stopped container shows its
volumes too. Other mounts (proc, sysfs, tmpfs, devpts, ...) show what lies under them
in the root filesystem, as dockerd's copies do; they are never removed or replaced
(removing a mount point through the overlay would detach the running container's
mount).

The same walk works on a running container's own view, ``/proc/<pid>/root``, where
its mounts are real (``opaque``: listings then stay out of proc, sysfs and the like).

Descriptors are ``O_PATH``; :func:`reopen` turns one into a readable one through
``/proc/self/fd`` after its type was checked.
"""

from __future__ import annotations

import errno
import os
import stat
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

#: Opens one component without following it.
PATH_FLAGS = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC
MAX_LINKS = 40


@dataclass(frozen=True)
class Mount:
    """One of the container's mounts."""

    destination: str
    #: The host path of a bind mount; None for the other kinds, which are not followed.
    source: str | None
    writable: bool = True


@dataclass
class Node:
    """An ``O_PATH`` descriptor and the canonical container path it stands for."""

    fd: int
    path: str
    owned: bool = True
    #: The bind mount this node is the root of, if any.
    mount: Mount | None = None

    def close(self) -> None:
        if self.owned and self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def stat(self) -> os.stat_result:
        return os.fstat(self.fd)


@dataclass
class Walk:
    """The directories a lookup went through, root first; ``rest`` holds the
    components left when a lookup that allows missing ones stopped at one."""

    stack: list[Node]
    rest: list[str] = field(default_factory=list)

    @property
    def node(self) -> Node:
        return self.stack[-1]

    def close(self) -> None:
        for node in self.stack:
            node.close()
        self.stack = []

    def take(self) -> Node:
        """The last node, now owned by the caller; the others are closed."""
        node = self.stack.pop()
        self.close()
        return node


def join(parent: str, name: str) -> str:
    return "/" + name if parent == "/" else f"{parent}/{name}"


def parent_of(path: str) -> str:
    head = path.rsplit("/", 1)[0]
    return head or "/"


def is_within(path: str, top: str) -> bool:
    """Whether canonical ``path`` is ``top`` or below it."""
    return top == "/" or path == top or path.startswith(top + "/")


def reopen(fd: int, flags: int) -> int:
    """A new descriptor, with ``flags``, for what the ``O_PATH`` descriptor ``fd`` refers
    to (callers check its type first: this follows it if it is a symlink)."""
    return os.open(f"/proc/self/fd/{fd}", flags | os.O_CLOEXEC)


def proc_path(fd: int) -> str:
    return f"/proc/self/fd/{fd}"


class Root:
    """A container's root directory and its mounts; see the module's docstring."""

    def __init__(
        self,
        fd: int,
        mounts: Sequence[Mount] = (),
        *,
        readonly: bool = False,
        opaque: bool = False,
    ) -> None:
        self.fd = fd
        self.readonly = readonly
        #: The root is the container's own view (/proc/<pid>/root), its mounts real:
        #: listings do not go into mounts other than binds (proc, sysfs, tmpfs...).
        self.opaque = opaque
        #: every mount, by canonical destination
        self.mounts: dict[str, Mount] = {}
        #: bind mounts, by canonical destination
        self.binds: dict[str, Mount] = {}
        #: canonical destination of each bind -> its children binds' names (for listings)
        self._bind_children: dict[str, set[str]] = {}
        for m in mounts:
            # In order: a later mount's destination may lie inside an earlier bind.
            dest = self.canonical(m.destination)
            if dest == "/":
                continue
            self.mounts[dest] = m
            if m.source is not None:
                self.binds[dest] = m
                self._bind_children.setdefault(parent_of(dest), set()).add(dest.rsplit("/", 1)[1])

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    # ------------------------------------------------------------------ lookups

    def walk(
        self,
        path: str,
        *,
        follow: bool = False,
        start: Sequence[Node] | None = None,
        missing_ok: bool = False,
    ) -> Walk:
        """Looks ``path`` up (absolute, or relative to ``start``, a walk's stack whose
        nodes stay the caller's). The last component is followed when it is a symlink
        only with ``follow`` or a trailing slash. With ``missing_ok``, a missing
        component ends the walk with it and what follows in ``rest``."""
        stack = [Node(self.fd, "/", owned=False)]
        if start is not None and not path.startswith("/"):
            stack = [Node(n.fd, n.path, owned=False, mount=n.mount) for n in start]
        todo = deque(path.split("/"))
        follow = follow or path.endswith("/")
        links = 0
        walk = Walk(stack)
        try:
            while todo:
                name = todo.popleft()
                if name in ("", "."):
                    continue
                if name == "..":
                    if len(stack) > 1:
                        stack.pop().close()
                    continue
                parent = stack[-1]
                here = join(parent.path, name)
                bind = self.binds.get(here)
                if bind is not None and bind.source is not None:
                    try:
                        fd = os.open(bind.source, os.O_PATH | os.O_CLOEXEC)
                    except FileNotFoundError:
                        pass  # a missing source: what lies under it shows
                    else:
                        stack.append(Node(fd, here, mount=bind))
                        continue
                try:
                    fd = os.open(name, PATH_FLAGS, dir_fd=parent.fd)
                except FileNotFoundError:
                    if missing_ok:
                        walk.rest = [name, *todo]
                        return walk
                    raise
                st = os.fstat(fd)
                if stat.S_ISLNK(st.st_mode) and (follow or any(p for p in todo)):
                    os.close(fd)
                    links += 1
                    if links > MAX_LINKS:
                        raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), here)
                    target = os.readlink(name, dir_fd=parent.fd)
                    if target.startswith("/"):
                        while len(stack) > 1:
                            stack.pop().close()
                    todo.extendleft(reversed(target.split("/")))
                    continue
                stack.append(Node(fd, here))
            return walk
        except BaseException:
            walk.close()
            raise

    def lookup(self, path: str, *, follow: bool = False) -> Node:
        """The node at ``path``; OSError (FileNotFoundError, NotADirectoryError, ...)
        as the kernel would raise them."""
        walk = self.walk(path, follow=follow)
        node = walk.take()
        if path.endswith("/") and not stat.S_ISDIR(node.stat().st_mode):
            node.close()
            raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), path)
        return node

    def canonical(self, path: str, *, follow: bool = True) -> str:
        """The container path ``path`` resolves to, symlinks followed in the root; as
        far as it exists, the missing rest joined on lexically (docker's
        FollowSymlinkInScope)."""
        try:
            walk = self.walk(path, follow=follow, missing_ok=True)
        except OSError:
            return lexical_join("/", path)
        try:
            if not walk.rest:
                return walk.node.path
            return lexical_join(walk.node.path, "/".join(walk.rest))
        finally:
            walk.close()

    # ------------------------------------------------------------------ mounts

    def mount_at(self, path: str) -> Mount | None:
        return self.mounts.get(path)

    def busy(self, path: str) -> bool:
        """Whether a mount lies at or below ``path`` (so it cannot be removed)."""
        return any(is_within(dest, path) for dest in self.mounts)

    def writable(self, path: str) -> bool:
        """Whether ``path`` may be written: by the innermost mount holding it, else by
        the root filesystem's read-only flag."""
        best: str | None = None
        for dest in self.mounts:
            if is_within(path, dest) and (best is None or len(dest) > len(best)):
                best = dest
        if best is not None:
            return self.mounts[best].writable
        return not self.readonly

    def listable(self, path: str) -> bool:
        """Whether a listing goes into ``path`` (not into a real non-bind mount)."""
        if not self.opaque:
            return True
        m = self.mounts.get(path)
        return m is None or m.source is not None

    def bind_children(self, path: str) -> Iterable[str]:
        """Names of the binds directly inside ``path``."""
        return self._bind_children.get(path, ())


def lexical_join(base: str, rest: str) -> str:
    """``rest`` joined to the absolute ``base`` and cleaned without touching the
    filesystem (``.`` and empty parts dropped, ``..`` never above ``/``)."""
    parts = [p for p in base.split("/") if p]
    for p in rest.split("/"):
        if p in ("", "."):
            continue
        if p == "..":
            if parts:
                parts.pop()
            continue
        parts.append(p)
    return "/" + "/".join(parts)
