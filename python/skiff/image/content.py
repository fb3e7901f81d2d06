"""The content-addressed blob store (containerd's provider + ingester contract).

On disk, under ``<data root>/content/``::

    blobs/sha256/<hex>          committed blobs, mode 0444, never rewritten
    ingest/<sha256(ref)>/       one in-progress write, named by the hash of its ref
        data                    the bytes so far (a resume re-hashes them)
        meta.json               {"ref", "expected", "expected_size", "started"}

A write goes to ``ingest/<dir>/data``; ``commit`` checks size and digest, fsyncs the
file, renames it to ``blobs/sha256/<hex>`` and fsyncs that directory, so a blob is either
whole under its name or absent. A writer holds ``flock`` on its ingest directory; a
second writer to the same ref gets Conflict. Ingests left by a crash are resumed by
reopening the same ref, or removed by ``sweep`` at start.

Only sha256 digests are accepted (``sha256:`` + 64 lowercase hex); paths are built
from validated digests and hashed ref names only.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
import secrets
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Final

from skiff import _native
from skiff.errors import Conflict, DigestMismatch, InvalidArgument, NotFound

ALGORITHM: Final = "sha256"
_HEX = re.compile(r"[a-f0-9]{64}")
_CHUNK = 1 << 20
#: Ingests untouched for this long are stale (containerd's default ingest expiry).
DEFAULT_INGEST_MAX_AGE: Final = 24 * 3600.0


def validate_digest(digest: str) -> str:
    """Returns ``digest`` when it is ``sha256:<64 lowercase hex>``, else InvalidArgument."""
    if not isinstance(digest, str):
        raise InvalidArgument(f"invalid digest {digest!r}")
    algorithm, sep, encoded = digest.partition(":")
    if not sep or not algorithm:
        raise InvalidArgument(f"invalid checksum digest format: {digest!r}")
    if algorithm != ALGORITHM:
        raise InvalidArgument(f"unsupported digest algorithm: {algorithm!r}")
    if not _HEX.fullmatch(encoded):
        raise InvalidArgument(f"invalid checksum digest format: {digest!r}")
    return digest


def digest_hex(digest: str) -> str:
    """The hex part of a validated digest."""
    return validate_digest(digest)[len(ALGORITHM) + 1 :]


def digest_bytes(data: bytes) -> str:
    """``sha256:<hex>`` of ``data``."""
    return _native.Sha256(data).finalize()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class ContentStore:
    """Blobs by digest under ``<root>/content``; ``root`` is the data root."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root) / "content"
        self.blobs = self.root / "blobs" / ALGORITHM
        self.ingests = self.root / "ingest"
        self.blobs.mkdir(parents=True, exist_ok=True)
        self.ingests.mkdir(parents=True, exist_ok=True)

    # --- provider ---

    def path(self, digest: str) -> Path:
        """Where the blob ``digest`` lives (whether or not it is there)."""
        return self.blobs / digest_hex(digest)

    def exists(self, digest: str) -> bool:
        return self.path(digest).is_file()

    def info(self, digest: str) -> int:
        """The blob's size; NotFound when absent."""
        try:
            return self.path(digest).stat().st_size
        except FileNotFoundError:
            raise NotFound(f"content digest {digest}: not found") from None

    def open(self, digest: str) -> IO[bytes]:
        """The blob opened for reading; NotFound when absent."""
        try:
            return self.path(digest).open("rb")
        except FileNotFoundError:
            raise NotFound(f"content digest {digest}: not found") from None

    def read(self, digest: str) -> bytes:
        """The whole blob (for small ones: manifests, configs)."""
        with self.open(digest) as f:
            return f.read()

    def walk(self) -> Iterator[str]:
        """Every committed digest."""
        with os.scandir(self.blobs) as entries:
            for entry in entries:
                if _HEX.fullmatch(entry.name) and entry.is_file(follow_symlinks=False):
                    yield f"{ALGORITHM}:{entry.name}"

    def delete(self, digest: str) -> None:
        """Removes a blob; NotFound when absent."""
        try:
            self.path(digest).unlink()
        except FileNotFoundError:
            raise NotFound(f"content digest {digest}: not found") from None

    # --- ingester ---

    def ingest(
        self, ref: str, expected: str | None = None, expected_size: int | None = None
    ) -> Writer:
        """A writer for ``ref``, resuming its partial data; Conflict if ref is locked."""
        if not ref:
            raise InvalidArgument("ingest ref must not be empty")
        if expected is not None:
            validate_digest(expected)
        if expected_size is not None and expected_size < 0:
            raise InvalidArgument(f"invalid expected size {expected_size}")
        return Writer(self, ref, expected, expected_size)

    def write_blob(self, data: bytes, expected: str | None = None) -> str:
        """Stores ``data``; returns its digest (DigestMismatch when not ``expected``)."""
        digest = digest_bytes(data)
        if expected is not None and validate_digest(expected) != digest:
            raise DigestMismatch(f"unexpected commit digest {digest}, expected {expected}")
        if self.exists(digest):
            return digest
        with self.ingest(_private_ref("write", digest), digest, len(data)) as writer:
            try:
                writer.write(data)
                return writer.commit()
            except BaseException:
                writer.abort()
                raise

    def import_file(
        self, path: str | os.PathLike[str], expected: str | None = None, *, move: bool = False
    ) -> str:
        """Puts a file into the store; returns its digest. ``move`` renames it in when the
        file is on the same filesystem (it is consumed either way)."""
        src = Path(path)
        if expected is not None:
            validate_digest(expected)
        if move:
            digest = _native.sha256_file(src)
            if expected is not None and digest != expected:
                raise DigestMismatch(f"unexpected commit digest {digest}, expected {expected}")
            target = self.path(digest)
            if target.exists():
                src.unlink()
                return digest
            try:
                with src.open("rb") as f:
                    os.fsync(f.fileno())
                os.chmod(src, 0o444)
                os.rename(src, target)
            except OSError as err:
                if err.errno != errno.EXDEV:
                    raise
            else:
                _fsync_dir(self.blobs)
                return digest
            expected = digest
        with self.ingest(_private_ref("import", src), expected) as writer, src.open("rb") as f:
            try:
                while chunk := f.read(_CHUNK):
                    writer.write(chunk)
                digest = writer.commit()
            except BaseException:
                writer.abort()
                raise
        if move:
            src.unlink()
        return digest

    def ingest_refs(self) -> list[str]:
        """The refs of every ingest present (locked or not)."""
        refs = []
        for entry in self.ingests.iterdir():
            meta = _read_meta(entry)
            if meta is not None and isinstance(meta.get("ref"), str):
                refs.append(meta["ref"])
        return refs

    def sweep(self, max_age: float = DEFAULT_INGEST_MAX_AGE) -> int:
        """Removes ingests not written for ``max_age`` seconds (0: all) and not locked
        by a writer; returns how many went."""
        now = time.time()
        removed = 0
        for entry in self.ingests.iterdir():
            if not entry.is_dir() or entry.is_symlink():
                with contextlib.suppress(FileNotFoundError):
                    entry.unlink()
                continue
            try:
                fd = _lock_dir(entry)
            except (Conflict, FileNotFoundError):
                continue
            try:
                if now - _last_write(entry) >= max_age:
                    shutil.rmtree(entry, ignore_errors=True)
                    removed += 1
            finally:
                os.close(fd)
        return removed

    def _ingest_dir(self, ref: str) -> Path:
        return self.ingests / _native.Sha256(ref.encode()).hexdigest()


def _private_ref(kind: str, what: object) -> str:
    """A ref no one else uses: local writes of the same content never conflict (a crash
    leaves a partial that ``sweep`` removes)."""
    return f"{kind}-{what}-{secrets.token_hex(8)}"


def _lock_dir(path: Path, ref: str = "") -> int:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise Conflict(f"ref {ref or path.name} locked: another writer holds it") from None
    except BaseException:
        os.close(fd)
        raise
    return fd


def _last_write(path: Path) -> float:
    latest = path.stat().st_mtime
    for name in ("data", "meta.json"):
        with contextlib.suppress(FileNotFoundError):
            latest = max(latest, (path / name).stat().st_mtime)
    return latest


def _read_meta(path: Path) -> dict[str, Any] | None:
    try:
        meta = json.loads((path / "meta.json").read_bytes())
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) else None


class Writer:
    """One ingest: ``write`` chunks, then ``commit``. As a context manager it releases
    the ref on exit; an uncommitted partial stays for a later resume (``abort`` drops it).
    """

    def __init__(
        self, store: ContentStore, ref: str, expected: str | None, expected_size: int | None
    ) -> None:
        self.store = store
        self.ref = ref
        self.expected = expected
        self.expected_size = expected_size
        self.dir = store._ingest_dir(ref)
        self._lock = self._lock_fresh()
        self._file: IO[bytes] | None = None
        try:
            self._open()
        except BaseException:
            os.close(self._lock)
            raise

    def _lock_fresh(self) -> int:
        # A writer that aborts removes the directory while holding its lock; one that
        # opened it just before then holds a lock on a removed directory: retry.
        while True:
            # There already; or removed again since mkdir saw it (pathlib's exist_ok
            # raised then): the lock below finds out, and this tries again.
            with contextlib.suppress(FileExistsError):
                os.mkdir(self.dir)
            try:
                fd = _lock_dir(self.dir, self.ref)
            except FileNotFoundError:
                continue
            try:
                if os.stat(self.dir).st_ino == os.fstat(fd).st_ino:
                    return fd
            except FileNotFoundError:
                pass
            os.close(fd)

    def _open(self) -> None:
        meta = _read_meta(self.dir)
        stale = meta is None or meta.get("ref") != self.ref
        if meta is not None and not stale:
            old_expected = meta.get("expected")
            if self.expected and old_expected and old_expected != self.expected:
                stale = True  # the partial is of other content
            self.expected = self.expected or old_expected
            self.expected_size = (
                self.expected_size if self.expected_size is not None else meta.get("expected_size")
            )
            self.started = float(meta.get("started", time.time()))
        else:
            self.started = time.time()
        data = self.dir / "data"
        if stale:
            with contextlib.suppress(FileNotFoundError):
                data.unlink()
        self._write_meta()
        fd = os.open(data, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        self._file = os.fdopen(fd, "r+b")
        size = os.fstat(fd).st_size
        if self.expected_size is not None and size > self.expected_size:
            size = 0
        self.truncate(size)

    def _write_meta(self) -> None:
        meta = {
            "ref": self.ref,
            "expected": self.expected,
            "expected_size": self.expected_size,
            "started": self.started,
        }
        tmp = self.dir / "meta.json.tmp"
        tmp.write_text(json.dumps(meta, sort_keys=True))
        os.replace(tmp, self.dir / "meta.json")

    @property
    def offset(self) -> int:
        """Bytes written so far (where a resumed download continues from)."""
        return self._hasher.size

    def _f(self) -> IO[bytes]:
        if self._file is None:
            raise InvalidArgument(f"writer for {self.ref!r} is closed")
        return self._file

    def truncate(self, size: int = 0) -> None:
        """Keeps only the first ``size`` bytes (re-hashed); 0 restarts the download."""
        f = self._f()
        f.truncate(size)
        f.seek(0)
        self._hasher = _native.Sha256()
        left = size
        while left > 0:
            chunk = f.read(min(_CHUNK, left))
            if not chunk:
                break
            self._hasher.update(chunk)
            left -= len(chunk)
        f.seek(self._hasher.size)

    def write(self, chunk: bytes) -> None:
        f = self._f()
        if self.expected_size is not None and self.offset + len(chunk) > self.expected_size:
            self.abort()
            raise InvalidArgument(
                f"{self.ref}: content exceeds the expected size {self.expected_size}"
            )
        f.write(chunk)
        self._hasher.update(chunk)

    def commit(self, expected: str | None = None, size: int | None = None) -> str:
        """Verifies size and digest, moves the data to its blob path; returns the digest.
        On a mismatch the partial is deleted and InvalidArgument/DigestMismatch raised."""
        f = self._f()
        expected = validate_digest(expected) if expected is not None else self.expected
        size = size if size is not None else self.expected_size
        f.flush()
        if size is not None and self.offset != size:
            got = self.offset
            self.abort()
            raise InvalidArgument(f"unexpected commit size {got}, expected {size}")
        digest = self._hasher.finalize()
        if expected is not None and digest != expected:
            self.abort()
            raise DigestMismatch(f"unexpected commit digest {digest}, expected {expected}")
        os.fsync(f.fileno())
        os.fchmod(f.fileno(), 0o444)
        target = self.store.path(digest)
        if not target.exists():
            os.rename(self.dir / "data", target)
            _fsync_dir(self.store.blobs)
        self.abort()
        return digest

    def abort(self) -> None:
        """Drops the partial data and releases the ref."""
        if self._file is None:
            return
        shutil.rmtree(self.dir, ignore_errors=True)
        self.close()

    def close(self) -> None:
        """Releases the ref, keeping the partial for a resume."""
        if self._file is not None:
            self._file.close()
            self._file = None
            os.close(self._lock)

    def __enter__(self) -> Writer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
