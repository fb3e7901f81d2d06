"""Image metadata over ``skiff.db`` (tables in ``skiff.store.db``, migration 1).

- images: ID (config digest) -> exact config bytes, created, size, parent, layer chain
- tags (``RepoTags``) and repository digests (``RepoDigests``): normalized references
  (``docker.io/library/busybox:latest``, ``docker.io/library/busybox@sha256:...``)
- layers: one record per unpacked layer (``snapshots/<snapshot>/``) keyed by chain ID.
  As in containers/storage, a layer is recorded *incomplete* before its files are
  written and completed after; removal marks it incomplete again before its files go.
  ``incomplete_layers()`` at start lists what a crash left half done.
- layer blobs: compressed blob digest -> diff ID (reused by pulls and pushes)
- blobs and blob references, leases: the roots and edges garbage collection follows.

Lookups by ID accept a unique prefix, with or without ``sha256:``.
"""

from __future__ import annotations

import contextlib
import secrets
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Final

from skiff.errors import Conflict, DigestMismatch, InvalidArgument, NotFound
from skiff.image import manifest
from skiff.image import reference as refs
from skiff.image.content import digest_bytes, digest_hex, validate_digest
from skiff.image.manifest import ImageConfig
from skiff.image.reference import Reference
from skiff.store.db import Database

LEASE_KINDS: Final = frozenset({"blob", "layer", "ingest"})
#: How long a lease lives unless told otherwise: a stuck pull cannot pin content forever.
DEFAULT_LEASE_TTL: Final = 24 * 3600.0


@dataclass(frozen=True)
class ImageRecord:
    id: str
    config: bytes
    created: str
    size: int
    parent: str | None
    added_at: int
    chain: tuple[str, ...]  # layer chain IDs, base first

    @property
    def short_id(self) -> str:
        return digest_hex(self.id)[:12]


@dataclass(frozen=True)
class LayerRecord:
    chain_id: str
    diff_id: str
    parent: str | None
    snapshot: str
    size: int
    incomplete: bool
    added_at: int


@dataclass(frozen=True)
class LayerBlob:
    blob_digest: str
    repository: str
    diff_id: str
    media_type: str
    size: int


def _layer(row: sqlite3.Row) -> LayerRecord:
    return LayerRecord(
        chain_id=row["chain_id"],
        diff_id=row["diff_id"],
        parent=row["parent"],
        snapshot=row["snapshot"],
        size=row["size"],
        incomplete=bool(row["incomplete"]),
        added_at=row["added_at"],
    )


def _ref(ref: Reference | str) -> Reference:
    parsed = refs.parse_normalized(ref) if isinstance(ref, str) else ref.tag_name_only()
    if not parsed.domain:
        raise InvalidArgument(f"reference {parsed} is not normalized")
    return parsed


class ImageMetadata:
    def __init__(self, db: Database) -> None:
        self.db = db
        #: changes after each write of images, tags or repository digests (once it
        #: is committed): what a name resolved to holds while this stays the same
        self.generation = 0

    # --- images ---

    def add_image(
        self,
        config_digest: str,
        config_json: bytes,
        chain: Sequence[str],
        created: str | None = None,
        size: int | None = None,
        parent: str | None = None,
    ) -> ImageRecord:
        """Records an image whose layers are all recorded and complete. ``chain`` must be
        the chain IDs of the config's diff IDs; ``created`` defaults to the config's;
        ``size`` to the sum of the layer sizes. Adding an image again is a no-op."""
        validate_digest(config_digest)
        actual = digest_bytes(config_json)
        if actual != config_digest:
            raise DigestMismatch(f"image config digest {actual}, expected {config_digest}")
        config = ImageConfig.from_json(config_json)
        chain = list(chain)
        if manifest.chain_ids(config.diff_ids) != chain:
            raise InvalidArgument(f"layer chain does not match the config of {config_digest}")
        with self.db.transaction() as conn:
            existing = self.find_image(config_digest)
            if existing is not None:
                return existing
            total = 0
            for i, cid in enumerate(chain):
                layer = self.get_layer(cid)
                if layer.incomplete:
                    raise Conflict(f"layer {cid} is incomplete")
                if layer.parent != (chain[i - 1] if i else None):
                    raise InvalidArgument(f"layer {cid} does not sit on {chain[i - 1]}")
                total += layer.size
            if parent is not None and self.find_image(parent) is None:
                raise NotFound(f"No such image: {parent}")
            conn.execute(
                "INSERT INTO images (id, config, created, size, parent, added_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (
                    config_digest,
                    config_json,
                    config.created if created is None else created,
                    total if size is None else size,
                    parent,
                    time.time_ns(),
                ),
            )
            conn.executemany(
                "INSERT INTO image_layers (image_id, idx, chain_id) VALUES (?, ?, ?)",
                [(config_digest, i, cid) for i, cid in enumerate(chain)],
            )
            record = self.get_image(config_digest)
        self.generation += 1
        return record

    def find_image(self, image_id: str) -> ImageRecord | None:
        """The image with exactly this ID, or None."""
        row = self.db.query_one("SELECT * FROM images WHERE id = ?", (image_id,))
        if row is None:
            return None
        chain = self.db.query(
            "SELECT chain_id FROM image_layers WHERE image_id = ? ORDER BY idx", (image_id,)
        )
        return ImageRecord(
            id=row["id"],
            config=bytes(row["config"]),
            created=row["created"],
            size=row["size"],
            parent=row["parent"],
            added_at=row["added_at"],
            chain=tuple(r[0] for r in chain),
        )

    def get_image(self, id_or_prefix: str) -> ImageRecord:
        """An image by ID or unique ID prefix; NotFound or InvalidArgument (ambiguous)."""
        image_id = self._by_prefix(id_or_prefix) if refs.looks_like_id(id_or_prefix) else None
        record = self.find_image(image_id) if image_id else None
        if record is None:
            raise NotFound(f"No such image: {id_or_prefix}")
        return record

    def _by_prefix(self, text: str) -> str | None:
        prefix = "sha256:" + text.removeprefix("sha256:")
        rows = self.db.query(
            "SELECT id FROM images WHERE id >= ? AND id < ? LIMIT 2", (prefix, prefix + "g")
        )
        if len(rows) > 1:
            raise InvalidArgument(f"multiple IDs found with provided prefix: {text}")
        return str(rows[0][0]) if rows else None

    def list_images(self) -> list[ImageRecord]:
        """Every image, newest first."""
        rows = self.db.query("SELECT id FROM images ORDER BY added_at DESC, id")
        return [r for r in (self.find_image(row[0]) for row in rows) if r is not None]

    def image_children(self, image_id: str) -> list[str]:
        rows = self.db.query("SELECT id FROM images WHERE parent = ? ORDER BY id", (image_id,))
        return [row[0] for row in rows]

    def delete_image(self, image_id: str) -> None:
        """Removes an image record (not its layers): Conflict while it is tagged, has
        repository digests, or is the parent of another image."""
        with self.db.transaction() as conn:
            if self.find_image(image_id) is None:
                raise NotFound(f"No such image: {image_id}")
            if self.tags_of(image_id) or self.digests_of(image_id):
                raise Conflict(f"image {image_id} is still referenced")
            if self.image_children(image_id):
                raise Conflict(f"image {image_id} has dependent child images")
            conn.execute("DELETE FROM images WHERE id = ?", (image_id,))
        self.generation += 1

    # --- tags and repository digests ---

    def tag(self, ref: Reference | str, image_id: str) -> str | None:
        """Points ``ref`` (normalized; ``latest`` by default) at an image; returns the
        image it pointed at before, if another."""
        parsed = _ref(ref)
        if parsed.digest is not None:
            raise InvalidArgument("refusing to create a tag with a digest reference")
        key = parsed.string()
        with self.db.transaction() as conn:
            if self.find_image(image_id) is None:
                raise NotFound(f"No such image: {image_id}")
            row = conn.execute("SELECT image_id FROM tags WHERE ref = ?", (key,)).fetchone()
            conn.execute(
                "INSERT INTO tags (ref, image_id, tagged_at) VALUES (?, ?, ?)"
                " ON CONFLICT (ref) DO UPDATE SET image_id = excluded.image_id,"
                " tagged_at = excluded.tagged_at",
                (key, image_id, time.time_ns()),
            )
        self.generation += 1
        previous = None if row is None else str(row[0])
        return previous if previous != image_id else None

    def add_digest(self, repository: str, digest: str, image_id: str) -> None:
        """Records that ``repository@digest`` (a manifest or index) is ``image_id``."""
        name = refs.parse_normalized_named(repository)
        if not name.is_name_only:
            raise InvalidArgument(f"{repository!r} is not a repository name")
        validate_digest(digest)
        with self.db.transaction() as conn:
            if self.find_image(image_id) is None:
                raise NotFound(f"No such image: {image_id}")
            conn.execute(
                "INSERT INTO image_digests (repository, digest, image_id) VALUES (?, ?, ?)"
                " ON CONFLICT (repository, digest) DO UPDATE SET image_id = excluded.image_id",
                (name.name, digest, image_id),
            )
        self.generation += 1

    def untag(self, ref: Reference | str) -> str:
        """Removes a tag or repository digest; returns the image it named."""
        parsed = _ref(ref)
        with self.db.transaction() as conn:
            image_id = self.lookup(parsed)
            if image_id is None:
                raise NotFound(f"No such image: {parsed.familiar()}")
            if parsed.digest is not None:
                conn.execute(
                    "DELETE FROM image_digests WHERE repository = ? AND digest = ?",
                    (parsed.name, parsed.digest),
                )
            else:
                conn.execute("DELETE FROM tags WHERE ref = ?", (parsed.string(),))
        self.generation += 1
        return image_id

    def lookup(self, ref: Reference) -> str | None:
        """The image a normalized reference names: by digest if it has one, else by tag."""
        if ref.digest is not None:
            row = self.db.query_one(
                "SELECT image_id FROM image_digests WHERE repository = ? AND digest = ?",
                (ref.name, ref.digest),
            )
        else:
            row = self.db.query_one(
                "SELECT image_id FROM tags WHERE ref = ?", (ref.tag_name_only().string(),)
            )
        return None if row is None else str(row[0])

    def tags_of(self, image_id: str) -> list[str]:
        rows = self.db.query("SELECT ref FROM tags WHERE image_id = ? ORDER BY ref", (image_id,))
        return [row[0] for row in rows]

    def digests_of(self, image_id: str) -> list[str]:
        """``repository@digest`` strings (RepoDigests)."""
        rows = self.db.query(
            "SELECT repository, digest FROM image_digests WHERE image_id = ?"
            " ORDER BY repository, digest",
            (image_id,),
        )
        return [f"{row[0]}@{row[1]}" for row in rows]

    def all_tags(self) -> dict[str, list[str]]:
        """image ID -> its tags, for listing many images in one query."""
        out: dict[str, list[str]] = {}
        for row in self.db.query("SELECT image_id, ref FROM tags ORDER BY ref"):
            out.setdefault(row[0], []).append(row[1])
        return out

    def resolve(self, text: str) -> str:
        """The image ID ``text`` names, Docker's way: a full ID; else a reference (tag or
        digest); else a unique ID prefix. NotFound("No such image: ...") otherwise."""
        if refs.is_image_id(text):
            image_id = "sha256:" + text.removeprefix("sha256:")
            if self.find_image(image_id) is None:
                raise NotFound(f"No such image: {image_id}")
            return image_id
        ref: Reference | None = None
        try:
            ref = refs.parse_normalized(text)
        except InvalidArgument:
            if not refs.looks_like_id(text):
                raise
        if ref is not None:
            by_ref = self.lookup(ref)
            if by_ref is not None:
                return by_ref
        if refs.looks_like_id(text):
            found = self._by_prefix(text)
            if found is not None:
                return found
        raise NotFound(f"No such image: {ref.familiar() if ref is not None else text}")

    # --- layers ---

    def add_layer(
        self,
        chain_id: str,
        diff_id: str,
        parent: str | None,
        snapshot: str | None = None,
        size: int = 0,
    ) -> LayerRecord:
        """Records a layer as incomplete, before its unpack starts. Its parent must be
        complete; Conflict when the chain ID is already recorded (check first with
        ``find_layer``: complete means there is nothing to do)."""
        if manifest.chain_id(parent, diff_id) != validate_digest(chain_id):
            raise InvalidArgument(f"chain ID {chain_id} is not {diff_id} on {parent}")
        snapshot = snapshot or digest_hex(chain_id)
        if "/" in snapshot or snapshot in (".", ".."):
            raise InvalidArgument(f"invalid snapshot name {snapshot!r}")
        with self.db.transaction() as conn:
            existing = self.find_layer(chain_id)
            if existing is not None:
                state = "being written" if existing.incomplete else "already present"
                raise Conflict(f"layer {chain_id} is {state}")
            if parent is not None and self.get_layer(parent).incomplete:
                raise Conflict(f"parent layer {parent} is incomplete")
            try:
                conn.execute(
                    "INSERT INTO layers"
                    " (chain_id, diff_id, parent, snapshot, size, incomplete, added_at)"
                    " VALUES (?, ?, ?, ?, ?, 1, ?)",
                    (chain_id, diff_id, parent, snapshot, size, time.time_ns()),
                )
            except sqlite3.IntegrityError:
                raise Conflict(f"snapshot {snapshot!r} belongs to another layer") from None
        return self.get_layer(chain_id)

    def complete_layer(self, chain_id: str, size: int | None = None) -> LayerRecord:
        """Marks a layer complete once its files are all written (and synced)."""
        with self.db.transaction() as conn:
            layer = self.get_layer(chain_id)
            conn.execute(
                "UPDATE layers SET incomplete = 0, size = ? WHERE chain_id = ?",
                (layer.size if size is None else size, chain_id),
            )
        return self.get_layer(chain_id)

    def find_layer(self, chain_id: str) -> LayerRecord | None:
        row = self.db.query_one("SELECT * FROM layers WHERE chain_id = ?", (chain_id,))
        return None if row is None else _layer(row)

    def get_layer(self, chain_id: str) -> LayerRecord:
        layer = self.find_layer(chain_id)
        if layer is None:
            raise NotFound(f"layer {chain_id} not found")
        return layer

    def list_layers(self) -> list[LayerRecord]:
        return [_layer(row) for row in self.db.query("SELECT * FROM layers ORDER BY chain_id")]

    def layer_children(self, chain_id: str) -> int:
        row = self.db.query_one("SELECT count(*) FROM layers WHERE parent = ?", (chain_id,))
        return int(row[0]) if row is not None else 0

    def layer_users(self, chain_id: str) -> int:
        """How many images use this layer."""
        row = self.db.query_one(
            "SELECT count(DISTINCT image_id) FROM image_layers WHERE chain_id = ?", (chain_id,)
        )
        return int(row[0]) if row is not None else 0

    def remove_layer(self, chain_id: str) -> LayerRecord:
        """First step of removing a layer: Conflict while images, child layers or live
        leases use it; else marks it incomplete and returns it. Delete its snapshot
        directory next, then ``forget_layer``. A crash in between leaves an incomplete
        layer, which start-up cleanup finishes removing."""
        with self.db.transaction() as conn:
            layer = self.get_layer(chain_id)
            if self.layer_children(chain_id):
                raise Conflict(f"layer {chain_id} has child layers")
            if self.layer_users(chain_id):
                raise Conflict(f"layer {chain_id} is used by an image")
            if chain_id in self.leased("layer"):
                raise Conflict(f"layer {chain_id} is leased")
            conn.execute("UPDATE layers SET incomplete = 1 WHERE chain_id = ?", (chain_id,))
        return layer

    def forget_layer(self, chain_id: str) -> None:
        """Deletes the record of an incomplete layer whose files are gone."""
        with self.db.transaction() as conn:
            if not self.get_layer(chain_id).incomplete:
                raise Conflict(f"layer {chain_id} is complete: remove_layer it first")
            if self.layer_children(chain_id):
                raise Conflict(f"layer {chain_id} has child layers")
            conn.execute("DELETE FROM layers WHERE chain_id = ?", (chain_id,))

    def incomplete_layers(self) -> list[LayerRecord]:
        rows = self.db.query("SELECT * FROM layers WHERE incomplete = 1 ORDER BY chain_id")
        return [_layer(row) for row in rows]

    # --- compressed layer blobs ---

    def add_layer_blob(
        self, blob_digest: str, diff_id: str, media_type: str, size: int, repository: str = ""
    ) -> None:
        """Remembers that ``blob_digest`` (compressed, ``media_type``) decompresses to
        ``diff_id``, as seen in ``repository`` (a normalized name, or "")."""
        validate_digest(blob_digest)
        validate_digest(diff_id)
        self.db.execute(
            "INSERT INTO layer_blobs (blob_digest, repository, diff_id, media_type, size)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT (blob_digest, repository) DO UPDATE SET"
            " diff_id = excluded.diff_id, media_type = excluded.media_type,"
            " size = excluded.size",
            (blob_digest, repository, diff_id, media_type, size),
        )

    def diff_id_of_blob(self, blob_digest: str) -> str | None:
        row = self.db.query_one(
            "SELECT diff_id FROM layer_blobs WHERE blob_digest = ? LIMIT 1", (blob_digest,)
        )
        return None if row is None else str(row[0])

    def blobs_of_diff_id(self, diff_id: str) -> list[LayerBlob]:
        rows = self.db.query(
            "SELECT * FROM layer_blobs WHERE diff_id = ? ORDER BY blob_digest, repository",
            (diff_id,),
        )
        return [
            LayerBlob(r["blob_digest"], r["repository"], r["diff_id"], r["media_type"], r["size"])
            for r in rows
        ]

    # --- blobs and the references between them ---

    def add_blob(
        self, digest: str, size: int, media_type: str = "", children: Iterable[str] = ()
    ) -> None:
        """Records a stored blob and the blobs it references (a manifest's config and
        layers, an index's manifests)."""
        validate_digest(digest)
        kids = [validate_digest(c) for c in children]
        with self.db.transaction() as conn:
            conn.execute(
                "INSERT INTO blobs (digest, size, media_type, added_at) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (digest) DO UPDATE SET media_type = excluded.media_type",
                (digest, size, media_type, time.time_ns()),
            )
            conn.executemany(
                "INSERT OR IGNORE INTO blob_refs (parent, child) VALUES (?, ?)",
                [(digest, c) for c in kids],
            )

    def blob_media_type(self, digest: str) -> str | None:
        row = self.db.query_one("SELECT media_type FROM blobs WHERE digest = ?", (digest,))
        return None if row is None else str(row[0])

    def forget_blob(self, digest: str) -> None:
        """Drops a blob's record and outgoing references (after GC deleted it)."""
        with self.db.transaction() as conn:
            conn.execute("DELETE FROM blob_refs WHERE parent = ?", (digest,))
            conn.execute("DELETE FROM blobs WHERE digest = ?", (digest,))

    # --- leases ---

    def create_lease(
        self, ttl: float | None = DEFAULT_LEASE_TTL, lease_id: str | None = None
    ) -> str:
        """A new lease (expiring after ``ttl`` seconds; None: never); returns its ID."""
        lease_id = lease_id or secrets.token_hex(16)
        now = time.time_ns()
        expires = None if ttl is None else now + int(ttl * 1e9)
        try:
            self.db.execute(
                "INSERT INTO leases (id, created_at, expires_at) VALUES (?, ?, ?)",
                (lease_id, now, expires),
            )
        except sqlite3.IntegrityError:
            raise Conflict(f"lease {lease_id} already exists") from None
        return lease_id

    def lease_add(self, lease_id: str, kind: str, key: str) -> None:
        """Holds ``key`` (a blob digest, layer chain ID or ingest ref) for the lease."""
        if kind not in LEASE_KINDS:
            raise InvalidArgument(f"invalid lease resource kind {kind!r}")
        try:
            self.db.execute(
                "INSERT OR IGNORE INTO lease_resources (lease_id, kind, key) VALUES (?, ?, ?)",
                (lease_id, kind, key),
            )
        except sqlite3.IntegrityError:
            raise NotFound(f"lease {lease_id} not found") from None

    def delete_lease(self, lease_id: str) -> None:
        cursor = self.db.execute("DELETE FROM leases WHERE id = ?", (lease_id,))
        if cursor.rowcount == 0:
            raise NotFound(f"lease {lease_id} not found")

    def lease_ids(self, prefix: str) -> list[str]:
        """IDs of the leases whose ID starts with ``prefix``."""
        rows = self.db.query(
            "SELECT id FROM leases WHERE substr(id, 1, ?) = ?", (len(prefix), prefix)
        )
        return [str(row[0]) for row in rows]

    @contextlib.contextmanager
    def lease(self, ttl: float | None = DEFAULT_LEASE_TTL) -> Iterator[str]:
        """A lease for the length of a block (a pull, a commit)."""
        lease_id = self.create_lease(ttl)
        try:
            yield lease_id
        finally:
            with contextlib.suppress(NotFound):
                self.delete_lease(lease_id)

    def expire_leases(self, now_ns: int | None = None) -> int:
        """Deletes expired leases; returns how many."""
        now = time.time_ns() if now_ns is None else now_ns
        cursor = self.db.execute(
            "DELETE FROM leases WHERE expires_at IS NOT NULL AND expires_at <= ?", (now,)
        )
        return cursor.rowcount

    def leased(self, kind: str, now_ns: int | None = None) -> set[str]:
        """Keys of ``kind`` held by live leases."""
        now = time.time_ns() if now_ns is None else now_ns
        rows = self.db.query(
            "SELECT DISTINCT r.key FROM lease_resources r JOIN leases l ON l.id = r.lease_id"
            " WHERE r.kind = ? AND (l.expires_at IS NULL OR l.expires_at > ?)",
            (kind, now),
        )
        return {row[0] for row in rows}

    # --- garbage collection roots ---

    def reachable_layers(self, now_ns: int | None = None) -> set[str]:
        """Chain IDs in use: every image's layers, live leases' layers, and their parents."""
        now = time.time_ns() if now_ns is None else now_ns
        rows = self.db.query(
            "WITH RECURSIVE live(chain_id) AS ("
            " SELECT chain_id FROM image_layers"
            " UNION SELECT r.key FROM lease_resources r JOIN leases l ON l.id = r.lease_id"
            "  WHERE r.kind = 'layer' AND (l.expires_at IS NULL OR l.expires_at > ?)"
            " UNION SELECT layers.parent FROM layers JOIN live USING (chain_id)"
            "  WHERE layers.parent IS NOT NULL)"
            " SELECT chain_id FROM live",
            (now,),
        )
        return {row[0] for row in rows}

    def reachable_blobs(self, now_ns: int | None = None) -> set[str]:
        """Digests in use: image configs, repository digests (manifests, indexes), live
        leases' blobs, and every blob those reference (``add_blob(children=...)``)."""
        now = time.time_ns() if now_ns is None else now_ns
        rows = self.db.query(
            "WITH RECURSIVE live(digest) AS ("
            " SELECT id FROM images"
            " UNION SELECT digest FROM image_digests"
            " UNION SELECT r.key FROM lease_resources r JOIN leases l ON l.id = r.lease_id"
            "  WHERE r.kind = 'blob' AND (l.expires_at IS NULL OR l.expires_at > ?)"
            " UNION SELECT blob_refs.child FROM blob_refs JOIN live"
            "  ON blob_refs.parent = live.digest)"
            " SELECT digest FROM live",
            (now,),
        )
        return {row[0] for row in rows}

    def unreachable_layers(self, now_ns: int | None = None) -> list[LayerRecord]:
        """Complete layers nothing uses, children before parents (the removal order)."""
        live = self.reachable_layers(now_ns)
        layers = {layer.chain_id: layer for layer in self.list_layers()}
        dead = [c for c, layer in layers.items() if c not in live and not layer.incomplete]

        def depth(cid: str) -> int:
            n = 0
            parent = layers[cid].parent
            while parent is not None and parent in layers:
                n, parent = n + 1, layers[parent].parent
            return n

        return [layers[c] for c in sorted(dead, key=lambda c: (-depth(c), c))]
