"""The daemon's SQLite database (``<data root>/skiff.db``): connection, schema, migrations.

Opened in WAL mode with ``synchronous=NORMAL`` (a crash can lose the last transactions
but never leaves the file inconsistent), foreign keys on, a busy timeout, rows as
``sqlite3.Row``. Transactions are explicit: ``with db.transaction():`` issues
``BEGIN IMMEDIATE`` (so writers queue on the busy timeout instead of failing at commit)
and commits or rolls back; statements outside one autocommit.

Migrations: ``MIGRATIONS[i]`` takes the schema from version ``i`` to ``i + 1``; each
runs in one transaction together with the ``schema_version`` update, so a crash leaves
the previous version intact. Never edit a released migration: append a new one. A
database newer than this code is refused.

Times are unix nanoseconds (``*_at`` columns); digests are ``sha256:<hex>`` text.
Migration 1 holds the image store; containers, networks and volumes get their tables in
later migrations, appended by the issues that add them.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Final

from skiff.errors import Conflict

DB_NAME: Final = "skiff.db"
BUSY_TIMEOUT_MS: Final = 10_000

_V1_IMAGES = """
-- Blobs in the content store that Skiff knows the media type of.
CREATE TABLE blobs (
    digest     TEXT PRIMARY KEY,
    size       INTEGER NOT NULL CHECK (size >= 0),
    media_type TEXT NOT NULL DEFAULT '',
    added_at   INTEGER NOT NULL
) WITHOUT ROWID;

-- Blob -> blob references (index -> manifest, manifest -> config and layers):
-- the edges garbage collection follows from its roots.
CREATE TABLE blob_refs (
    parent TEXT NOT NULL,
    child  TEXT NOT NULL,
    PRIMARY KEY (parent, child)
) WITHOUT ROWID;
CREATE INDEX blob_refs_child ON blob_refs (child);

-- Unpacked layers (snapshots/<snapshot>/). A layer is recorded incomplete before its
-- unpack starts and completed after; incomplete ones are removed at start.
CREATE TABLE layers (
    chain_id   TEXT PRIMARY KEY,
    diff_id    TEXT NOT NULL,
    parent     TEXT REFERENCES layers (chain_id),
    snapshot   TEXT NOT NULL UNIQUE,
    size       INTEGER NOT NULL DEFAULT 0 CHECK (size >= 0),
    incomplete INTEGER NOT NULL DEFAULT 1 CHECK (incomplete IN (0, 1)),
    added_at   INTEGER NOT NULL
);
CREATE INDEX layers_parent ON layers (parent);

-- Compressed blobs known to decompress to a diff ID, and where they came from:
-- a pull skips layers it has, a push mounts or skips blobs the registry has.
CREATE TABLE layer_blobs (
    blob_digest TEXT NOT NULL,
    repository  TEXT NOT NULL DEFAULT '',
    diff_id     TEXT NOT NULL,
    media_type  TEXT NOT NULL,
    size        INTEGER NOT NULL CHECK (size >= 0),
    PRIMARY KEY (blob_digest, repository)
) WITHOUT ROWID;
CREATE INDEX layer_blobs_diff_id ON layer_blobs (diff_id);

-- Images by ID (the config digest); config holds the config's exact bytes.
CREATE TABLE images (
    id       TEXT PRIMARY KEY,
    config   BLOB NOT NULL,
    created  TEXT NOT NULL DEFAULT '',
    size     INTEGER NOT NULL DEFAULT 0 CHECK (size >= 0),
    parent   TEXT REFERENCES images (id),
    added_at INTEGER NOT NULL
);
CREATE INDEX images_parent ON images (parent);

CREATE TABLE image_layers (
    image_id TEXT NOT NULL REFERENCES images (id) ON DELETE CASCADE,
    idx      INTEGER NOT NULL CHECK (idx >= 0),
    chain_id TEXT NOT NULL REFERENCES layers (chain_id),
    PRIMARY KEY (image_id, idx)
) WITHOUT ROWID;
CREATE INDEX image_layers_chain_id ON image_layers (chain_id);

-- Tags: 'docker.io/library/busybox:latest' -> image (RepoTags).
CREATE TABLE tags (
    ref       TEXT PRIMARY KEY,
    image_id  TEXT NOT NULL REFERENCES images (id),
    tagged_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX tags_image_id ON tags (image_id);

-- Manifest digests an image was pulled or pushed by, per repository (RepoDigests).
CREATE TABLE image_digests (
    repository TEXT NOT NULL,
    digest     TEXT NOT NULL,
    image_id   TEXT NOT NULL REFERENCES images (id),
    PRIMARY KEY (repository, digest)
) WITHOUT ROWID;
CREATE INDEX image_digests_image_id ON image_digests (image_id);

-- Leases keep what an in-flight pull, build or commit will reference safe from GC.
CREATE TABLE leases (
    id         TEXT PRIMARY KEY,
    created_at INTEGER NOT NULL,
    expires_at INTEGER
) WITHOUT ROWID;

CREATE TABLE lease_resources (
    lease_id TEXT NOT NULL REFERENCES leases (id) ON DELETE CASCADE,
    kind     TEXT NOT NULL CHECK (kind IN ('blob', 'layer', 'ingest')),
    key      TEXT NOT NULL,
    PRIMARY KEY (lease_id, kind, key)
) WITHOUT ROWID;
CREATE INDEX lease_resources_key ON lease_resources (kind, key);
"""

_V2_CONTAINERS = """
-- Containers: the Docker-shaped record (Config, HostConfig, State, ...) as JSON,
-- rewritten whole on every state change; id and name are columns for lookups.
-- image_id is not a foreign key: docker lets `rmi -f` remove an image in use (the
-- container's lease keeps its layers).
CREATE TABLE containers (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    image_id   TEXT NOT NULL,
    record     TEXT NOT NULL,
    created_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX containers_image_id ON containers (image_id);
"""

_V3_CONTAINERS_ROWID = """
-- Containers in a rowid table: a record (2-3 KB of JSON) fits in its leaf page
-- there, where a WITHOUT ROWID table moves what passes ~1 KB of a row to overflow
-- pages, and every save of a record wrote three or four pages instead of one.
CREATE TABLE containers_v3 (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    image_id   TEXT NOT NULL,
    record     TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
INSERT INTO containers_v3 (id, name, image_id, record, created_at)
    SELECT id, name, image_id, record, created_at FROM containers;
DROP TABLE containers;
ALTER TABLE containers_v3 RENAME TO containers;
CREATE INDEX containers_image_id ON containers (image_id);
"""

#: ``MIGRATIONS[i]`` upgrades the schema from version i to i + 1.
MIGRATIONS: Final[Sequence[str]] = (_V1_IMAGES, _V2_CONTAINERS, _V3_CONTAINERS_ROWID)


def statements(script: str) -> Iterator[str]:
    """The complete SQL statements of ``script`` (triggers with inner ``;`` included)."""
    buf = ""
    for piece in script.split(";"):
        buf += piece + ";"
        if sqlite3.complete_statement(buf):
            if buf.strip(" \t\r\n;"):
                yield buf.strip()
            buf = ""
    if buf.strip(" \t\r\n;"):
        yield buf.strip()


def _retry_busy(step: Callable[[], object], deadline: float) -> None:
    """Runs ``step``, again after a short pause while SQLite answers busy/locked."""
    pause = 0.005
    while True:
        try:
            step()
            return
        except sqlite3.OperationalError as err:
            code = getattr(err, "sqlite_errorcode", None)
            if (
                code not in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
                or time.monotonic() > deadline
            ):
                raise
        time.sleep(pause)
        pause = min(pause * 2, 0.1)


class Database:
    """One connection to ``skiff.db``, usable from any thread (calls are serialized)."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        migrations: Sequence[str] = MIGRATIONS,
        busy_timeout_ms: int = BUSY_TIMEOUT_MS,
    ) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._depth = 0
        self.conn = sqlite3.connect(
            self.path, isolation_level=None, check_same_thread=False, timeout=0
        )
        try:
            self.conn.row_factory = sqlite3.Row
            self.conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
            # Switching a new database to WAL, and the first migration, can meet
            # SQLITE_BUSY without the busy handler (SQLite returns it at once when
            # waiting could deadlock, e.g. several processes opening it together).
            deadline = time.monotonic() + busy_timeout_ms / 1000
            _retry_busy(lambda: self.conn.execute("PRAGMA journal_mode = WAL"), deadline)
            self.conn.execute("PRAGMA synchronous = NORMAL")
            self.conn.execute("PRAGMA foreign_keys = ON")
            _retry_busy(lambda: self.migrate(migrations), deadline)
        except BaseException:
            self.conn.close()
            raise

    @classmethod
    def open(cls, data_root: str | os.PathLike[str]) -> Database:
        """The database of a data root, migrated to the current schema."""
        return cls(Path(data_root) / DB_NAME)

    @property
    def version(self) -> int:
        row = self.conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'"
        ).fetchone()
        if row is None:
            return 0
        row = self.conn.execute("SELECT version FROM schema_version").fetchone()
        return int(row[0]) if row is not None else 0

    def migrate(self, migrations: Sequence[str] = MIGRATIONS) -> int:
        """Applies the migrations not applied yet, each in its own transaction; returns
        the resulting version. Safe to call again and from several processes."""
        with self._lock:
            while True:
                with self.transaction():
                    self.conn.execute(
                        "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)"
                    )
                    current = self.version
                    if (
                        current == 0
                        and self.conn.execute("SELECT count(*) FROM schema_version").fetchone()[0]
                        == 0
                    ):
                        self.conn.execute("INSERT INTO schema_version (version) VALUES (0)")
                    if current > len(migrations):
                        raise Conflict(
                            f"{self.path}: schema version {current} is newer than this "
                            f"skiffd supports ({len(migrations)})"
                        )
                    if current == len(migrations):
                        return current
                    for statement in statements(migrations[current]):
                        self.conn.execute(statement)
                    self.conn.execute("UPDATE schema_version SET version = ?", (current + 1,))

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT``, or ``ROLLBACK`` when the block raises. A
        nested block is a savepoint: its failure undoes only its own writes."""
        with self._lock:
            depth = self._depth
            self.conn.execute(f"SAVEPOINT sp{depth}" if depth else "BEGIN IMMEDIATE")
            self._depth += 1
            try:
                yield self.conn
            except BaseException:
                if depth:
                    self.conn.execute(f"ROLLBACK TO sp{depth}")
                    self.conn.execute(f"RELEASE sp{depth}")
                else:
                    self.conn.execute("ROLLBACK")
                raise
            else:
                try:
                    self.conn.execute(f"RELEASE sp{depth}" if depth else "COMMIT")
                except BaseException:
                    if not depth and self.conn.in_transaction:
                        self.conn.execute("ROLLBACK")
                    raise
            finally:
                self._depth = depth

    def execute(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Cursor:
        with self._lock:
            return self.conn.execute(sql, params)

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return list(self.conn.execute(sql, params))

    def query_one(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Row | None:
        with self._lock:
            row: sqlite3.Row | None = self.conn.execute(sql, params).fetchone()
            return row

    def close(self) -> None:
        with self._lock:
            self.conn.close()

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
