"""Spreading the directories made per container over the filesystem.

On ext4 mounted without a journal, a new inode never reuses one deleted in the last
minutes: each allocation scans past every recently deleted inode of its block group,
and a directory's files are allocated in the directory's group. A host that makes and
removes containers all day (a CI runner) piles up thousands of them in the one group
holding the containers' parent directory: creating a container's dozen files then
took 1-10 ms on such a disk, and growing with every round (benches/run density).

ext4's allocator spreads the subdirectories of a directory flagged "top" (``chattr
+T``, FS_TOPDIR_FL) over its block groups, as it does for the root's. Each container's
directory (and what is made in it) then lands in a group of its own choosing, whose
recently deleted inodes are few. The flag is only a placement hint: other filesystems
ignore or refuse it, and nothing depends on it.
"""

from __future__ import annotations

import fcntl
import os
import struct
from pathlib import Path

FS_IOC_GETFLAGS = 0x80086601
FS_IOC_SETFLAGS = 0x40086602
FS_TOPDIR_FL = 0x00020000
#: The kernel reads and writes an int, whatever the ioctl numbers say (as chattr).
_FLAGS = struct.Struct("i")


def spread_children(path: Path) -> bool:
    """Flags the directory ``path`` so that the directories made in it are spread
    over the filesystem; False where the filesystem has no such flag."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:  # a placement hint: never a reason to fail
        return False
    try:
        flags = _FLAGS.unpack(fcntl.ioctl(fd, FS_IOC_GETFLAGS, _FLAGS.pack(0)))[0]
        if not flags & FS_TOPDIR_FL:
            fcntl.ioctl(fd, FS_IOC_SETFLAGS, _FLAGS.pack(flags | FS_TOPDIR_FL))
        return True
    except OSError:  # ENOTTY, EOPNOTSUPP (tmpfs, overlayfs...), EPERM
        return False
    finally:
        os.close(fd)
