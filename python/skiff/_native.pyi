"""Type stubs for ``skiff._native`` (written by hand; checked by ``mypy.stubtest``).

Long calls release the GIL. Errors: ``OSError`` subclasses for I/O, and the classes of
``skiff.errors`` (``InvalidArgument``, ``DigestMismatch``, ...) for the rest.
"""

import os
from collections.abc import Sequence
from typing import final

from typing_extensions import Buffer

__all__ = [
    "Sha256",
    "Xxh3",
    "__version__",
    "bind_mount",
    "changes",
    "diff_trees",
    "diff_upper",
    "mount_overlay",
    "new_netns",
    "remove_tree",
    "sha256_file",
    "spawn_detached",
    "tar_tree",
    "unmount",
    "unpack_layer",
    "verify_file",
    "xxh3_128",
    "xxh3_128_file",
]

__version__: str

@final
class Sha256:
    """A streaming sha256 digester."""

    def __new__(cls, data: Buffer | None = None) -> Sha256: ...
    def update(self, data: Buffer) -> None:
        """Adds bytes; releases the GIL for large buffers."""

    def digest(self) -> bytes:
        """The 32-byte digest of what went in so far."""

    def hexdigest(self) -> str:
        """The hex digest of what went in so far."""

    def finalize(self) -> str:
        """Ends the stream; returns ``sha256:<hex>``. Later calls raise InvalidArgument."""

    @property
    def size(self) -> int:
        """Bytes hashed so far."""

    def copy(self) -> Sha256: ...

@final
class Xxh3:
    """A streaming xxh3-128 hasher."""

    def __new__(cls, data: Buffer | None = None) -> Xxh3: ...
    def update(self, data: Buffer) -> None: ...
    def intdigest(self) -> int: ...
    def hexdigest(self) -> str: ...

def sha256_file(path: str | os.PathLike[str]) -> str:
    """``sha256:<hex>`` of a file's contents, read without the GIL."""

def verify_file(path: str | os.PathLike[str], expected: str) -> int:
    """The file's size, or DigestMismatch when its sha256 is not ``expected``."""

def xxh3_128_file(path: str | os.PathLike[str]) -> int:
    """xxh3-128 of a file's contents."""

def xxh3_128(data: Buffer) -> int:
    """xxh3-128 of a buffer."""

# --- overlay mounts (rust/py/src/overlay.rs) ---

def mount_overlay(
    lowers: Sequence[str | os.PathLike[str]],
    target: str | os.PathLike[str],
    *,
    upper: str | os.PathLike[str] | None = None,
    work: str | os.PathLike[str] | None = None,
    options: Sequence[str] = ...,
) -> None:
    """Mounts an overlay at ``target``, ``lowers`` top first; InvalidArgument when the
    options would not fit in a page (too many layers)."""

def unmount(target: str | os.PathLike[str], *, detach: bool = False) -> None:
    """Unmounts ``target``; not mounted is fine."""

def spawn_detached(
    argv: Sequence[str | os.PathLike[str]], stdout_fd: int, stderr_path: str | os.PathLike[str]
) -> int:
    """Starts ``argv`` in its own process group, from ``/``, stdin on /dev/null,
    stdout on a duplicate of ``stdout_fd``, stderr appended to ``stderr_path``,
    without the GIL; its pid (the caller reaps it)."""

def remove_tree(path: str | os.PathLike[str]) -> None:
    """Removes ``path`` and everything under it without following symbolic links
    (without the GIL); a path already gone is fine."""

def bind_mount(
    source: str | os.PathLike[str], target: str | os.PathLike[str], *, readonly: bool = False
) -> None:
    """Bind-mounts ``source`` on ``target`` recursively, read-only when asked."""

# --- layer unpack (rust/py/src/unpack.rs) ---

# Private names: the diff section imports the same ones for itself.
from typing import Literal as _Literal  # noqa: E402
from typing import TypedDict as _TypedDict  # noqa: E402
from typing import type_check_only as _type_check_only  # noqa: E402

@_type_check_only
class UnpackStats(_TypedDict):
    """What ``unpack_layer`` returns."""

    digest: str
    """``sha256:<hex>`` of the blob (the compressed stream)."""
    compressed_size: int
    """Bytes of the blob."""
    diff_id: str
    """``sha256:<hex>`` of the uncompressed tar."""
    size: int
    """Bytes of the uncompressed tar."""
    entries: int
    """Members in the tar (PAX and GNU long-name headers not counted)."""
    compression: _Literal["gzip", "zstd", "none"]
    """As detected from the blob's first bytes."""

def unpack_layer(
    src: str | os.PathLike[str] | int,
    dest: str | os.PathLike[str],
    *,
    expected_digest: str | None = None,
    expected_diff_id: str | None = None,
    whiteouts: _Literal["overlay", "apply"] = "overlay",
    same_owner: bool | None = None,
) -> UnpackStats:
    """Unpacks a layer blob (gzip, zstd or plain tar) into ``dest`` in one streaming pass,
    without the GIL.

    ``src`` is a path, or a file descriptor (a file or a pipe) that the call takes over
    and closes, whatever happens. ``dest`` is created when missing (its parent must
    exist); on any error everything the call wrote under it is removed, and ``dest``
    itself when the call created it.

    Both digests cover the whole stream; a mismatch with ``expected_digest`` (of the blob)
    or ``expected_diff_id`` (of the tar) raises DigestMismatch. Hostile or broken layers
    (``..`` escapes, links out of the root, truncated or corrupt streams) raise
    InvalidArgument naming the member; symlinks inside the layer resolve within ``dest``.

    ``whiteouts="overlay"`` writes whiteouts as overlayfs reads them (0/0 character
    devices, ``trusted.overlay.opaque=y``); ``"apply"`` carries them out, for flattening
    layers onto one tree. ``same_owner`` (default: running as root) chowns to the tar's
    uid/gid.
    """

# --- layer diff (rust/py/src/diff.rs) ---

from typing import TypedDict, type_check_only  # noqa: E402

@type_check_only
class DiffStats(TypedDict):
    """A layer blob written by ``diff_upper``, ``tar_tree`` or ``diff_trees``."""

    digest: str
    """``sha256:<hex>`` of the blob as written (compressed)."""
    size: int
    """Bytes of the blob."""
    diff_id: str
    """``sha256:<hex>`` of the uncompressed tar."""
    uncompressed_size: int
    entries: int
    """Tar entries, whiteouts included."""

def diff_upper(
    upper: str | os.PathLike[str],
    dest: str | os.PathLike[str],
    *,
    lowers: Sequence[str | os.PathLike[str]] = (),
    compression: str = "gzip",
    level: int | None = None,
) -> DiffStats:
    """Writes a container's overlay upper dir as a layer blob at ``dest``.

    Whiteout devices become ``.wh.<name>``, opaque directories get ``.wh..wh..opq``,
    overlayfs's xattrs are dropped. With ``lowers`` (top first), whiteouts and opaque
    markers that hide nothing in any lower are left out. ``dest`` appears only
    complete (written to a temporary name, synced, renamed). ``compression``:
    ``"gzip"`` (level 0-9, default 6), ``"zstd"`` (default 3) or ``"none"``.
    """

def tar_tree(
    root: str | os.PathLike[str],
    dest: str | os.PathLike[str],
    *,
    compression: str = "gzip",
    level: int | None = None,
) -> DiffStats:
    """Writes a whole directory tree as a layer blob at ``dest``."""

def diff_trees(
    old: str | os.PathLike[str],
    new: str | os.PathLike[str],
    dest: str | os.PathLike[str],
    *,
    compression: str = "gzip",
    level: int | None = None,
) -> DiffStats:
    """Writes what changed from tree ``old`` to tree ``new`` as a layer blob at ``dest``.

    Compared like Docker: type, mode, owner, device, symlink target, xattrs, and size
    and mtime of non-directories (not contents). A path gone from ``new`` is one
    whiteout; unchanged parent directories of changes are included.
    """

def changes(
    lower_or_lowers: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    upper: str | os.PathLike[str],
    *,
    overlay: bool,
) -> list[tuple[str, int]]:
    """``docker diff``: ``(path, kind)`` pairs, kind 0 modified, 1 added, 2 deleted.

    With ``overlay=True``, ``upper`` is an overlay upper dir and the first argument its
    lower dirs, top first (a path present in a lower is modified, else added). Else
    both are plain trees, old and new. Parents come before their contents.
    """

def new_netns() -> int:
    """A new network namespace with its loopback up, as a close-on-exec descriptor
    (the caller's to close); the calling process's own namespace is untouched."""
