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
    "mount_overlay",
    "sha256_file",
    "unmount",
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

def bind_mount(
    source: str | os.PathLike[str], target: str | os.PathLike[str], *, readonly: bool = False
) -> None:
    """Bind-mounts ``source`` on ``target`` recursively, read-only when asked."""

# --- layer unpack (rust/py/src/unpack.rs) ---

# --- layer diff (rust/py/src/diff.rs) ---
