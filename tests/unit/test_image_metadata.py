"""skiff.db (connection, migrations) and the image metadata API over it."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from skiff.errors import Conflict, DigestMismatch, InvalidArgument, NotFound
from skiff.image.manifest import ImageConfig, chain_ids
from skiff.image.metadata import ImageMetadata
from skiff.image.reference import parse_normalized
from skiff.store import db as dbmod
from skiff.store.db import Database


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


DIFFS = [sha(f"diff{i}".encode()) for i in range(4)]
CHAINS = chain_ids(DIFFS)


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database.open(tmp_path)
    yield database
    database.close()


@pytest.fixture
def meta(db: Database) -> ImageMetadata:
    return ImageMetadata(db)


def config_for(diff_ids: list[str], created: str = "2024-01-02T03:04:05Z", tag: str = "") -> bytes:
    config = ImageConfig(architecture="amd64", os="linux", diff_ids=list(diff_ids), created=created)
    config.config.labels = {"t": tag} if tag else {}
    return config.to_bytes()


def add_layers(meta: ImageMetadata, n: int, size: int = 10) -> list[str]:
    for i in range(n):
        if meta.find_layer(CHAINS[i]) is None:
            meta.add_layer(CHAINS[i], DIFFS[i], CHAINS[i - 1] if i else None)
            meta.complete_layer(CHAINS[i], size=size * (i + 1))
    return CHAINS[:n]


def add_image(meta: ImageMetadata, n: int = 2, tag: str = "") -> str:
    chain = add_layers(meta, n)
    config = config_for(DIFFS[:n], tag=tag)
    return meta.add_image(sha(config), config, chain).id


# --- database ---


def test_open_sets_up_the_connection(db: Database, tmp_path: Path) -> None:
    assert db.path == tmp_path / "skiff.db"
    assert db.query_one("PRAGMA journal_mode")[0] == "wal"  # type: ignore[index]
    assert db.query_one("PRAGMA foreign_keys")[0] == 1  # type: ignore[index]
    assert db.query_one("PRAGMA busy_timeout")[0] == dbmod.BUSY_TIMEOUT_MS  # type: ignore[index]
    assert db.version == len(dbmod.MIGRATIONS)
    tables = {row[0] for row in db.query("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {
        "schema_version",
        "blobs",
        "blob_refs",
        "layers",
        "layer_blobs",
        "images",
        "image_layers",
        "tags",
        "image_digests",
        "leases",
        "lease_resources",
    } <= tables
    row = db.query_one("SELECT 1 AS one")
    assert row is not None and row["one"] == 1


def test_migrations_are_idempotent(tmp_path: Path) -> None:
    path = tmp_path / "skiff.db"
    with Database(path) as first:
        first.execute("INSERT INTO leases (id, created_at) VALUES ('keep', 1)")
        assert first.migrate() == len(dbmod.MIGRATIONS)
    with Database(path) as second:
        assert second.version == len(dbmod.MIGRATIONS)
        assert second.query_one("SELECT count(*) FROM schema_version")[0] == 1  # type: ignore[index]
        assert second.query_one("SELECT id FROM leases")[0] == "keep"  # type: ignore[index]


def test_migrations_apply_in_order_and_atomically(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    steps = ["CREATE TABLE a (x INTEGER);", "CREATE TABLE b (y INTEGER); INSERT INTO b VALUES (1);"]
    with Database(path, migrations=steps[:1]) as database:
        assert database.version == 1
    broken = [*steps, "CREATE TABLE c (z INTEGER); INSERT INTO nowhere VALUES (1);"]
    with pytest.raises(sqlite3.OperationalError):
        Database(path, migrations=broken)
    with Database(path, migrations=steps) as database:
        # the broken third migration left nothing behind; the second applied once
        assert database.version == 2
        names = {r[0] for r in database.query("SELECT name FROM sqlite_master")}
        assert "c" not in names and {"a", "b"} <= names
        assert database.query_one("SELECT count(*) FROM b")[0] == 1  # type: ignore[index]
    with pytest.raises(Conflict, match="newer"):
        Database(path, migrations=steps[:1])


def test_the_containers_table_becomes_a_rowid_table_with_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "skiff.db"
    with Database(path, migrations=dbmod.MIGRATIONS[:2]) as old:
        old.execute(
            "INSERT INTO containers (id, name, image_id, record, created_at)"
            " VALUES ('c1', 'one', 'sha256:i', ?, 5)",
            ("{" + '"x": 1, ' * 400 + '"y": 2}',),
        )
    with Database(path) as database:
        sql = database.query_one("SELECT sql FROM sqlite_master WHERE name = 'containers'")
        assert sql is not None and "WITHOUT ROWID" not in sql[0]
        row = database.query_one("SELECT id, name, image_id, created_at FROM containers")
        assert row is not None and tuple(row) == ("c1", "one", "sha256:i", 5)
        for values in (("c1", "two"), ("c2", "one")):  # id and name stay unique
            with pytest.raises(sqlite3.IntegrityError):
                database.execute(
                    "INSERT INTO containers (id, name, image_id, record, created_at)"
                    " VALUES (?, ?, 'sha256:i', '{}', 6)",
                    values,
                )
        plan = database.query(
            "EXPLAIN QUERY PLAN SELECT 1 FROM containers WHERE image_id = 'sha256:i'"
        )
        assert any("containers_image_id" in r[3] for r in plan)


def test_concurrent_openers_migrate_once(tmp_path: Path) -> None:
    path = tmp_path / "skiff.db"
    errors: list[BaseException] = []

    def opener() -> None:
        try:
            Database(path).close()
        except BaseException as err:  # pragma: no cover - reported below
            errors.append(err)

    threads = [threading.Thread(target=opener) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with Database(path) as database:
        assert database.version == len(dbmod.MIGRATIONS)


def test_statements_splits_scripts() -> None:
    script = """
    CREATE TABLE t (x TEXT DEFAULT ';');
    CREATE TRIGGER tr AFTER INSERT ON t BEGIN UPDATE t SET x = 'a;b'; END;
    -- trailing comment
    """
    parts = list(dbmod.statements(script))
    assert len(parts) == 3
    assert parts[1].startswith("CREATE TRIGGER") and parts[1].endswith("END;")


def test_transactions(db: Database) -> None:
    with pytest.raises(RuntimeError), db.transaction() as conn:
        conn.execute("INSERT INTO leases (id, created_at) VALUES ('a', 1)")
        raise RuntimeError
    assert db.query("SELECT * FROM leases") == []
    with db.transaction() as conn:
        conn.execute("INSERT INTO leases (id, created_at) VALUES ('outer', 1)")
        with pytest.raises(RuntimeError), db.transaction() as inner:
            inner.execute("INSERT INTO leases (id, created_at) VALUES ('inner', 1)")
            raise RuntimeError
    assert [r[0] for r in db.query("SELECT id FROM leases")] == ["outer"]
    assert not db.conn.in_transaction


def test_foreign_keys_enforced(db: Database) -> None:
    with pytest.raises(sqlite3.IntegrityError):
        db.execute("INSERT INTO tags (ref, image_id, tagged_at) VALUES ('x', 'nope', 1)")


# --- images, tags, resolve ---


def test_add_and_get_image(meta: ImageMetadata) -> None:
    chain = add_layers(meta, 2)
    config = config_for(DIFFS[:2])
    image_id = sha(config)
    record = meta.add_image(image_id, config, chain)
    assert record.id == image_id and record.config == config
    assert record.chain == tuple(chain)
    assert record.size == 10 + 20  # sum of layer sizes
    assert record.created == "2024-01-02T03:04:05Z"
    assert record.short_id == image_id[7:19]
    assert meta.add_image(image_id, config, chain) == record  # idempotent
    assert meta.get_image(image_id) == record
    assert meta.get_image(image_id[7:]) == record
    assert meta.get_image(image_id[:12]) == record  # "sha256:abcde"
    assert meta.get_image(image_id[7:10]) == record
    assert meta.list_images() == [record]
    assert meta.layer_users(chain[0]) == 1
    with pytest.raises(NotFound, match="No such image: ffff"):
        meta.get_image("ffff" if not image_id[7:].startswith("ffff") else "0000")
    with pytest.raises(NotFound):
        meta.get_image("busybox")


def test_add_image_validates(meta: ImageMetadata) -> None:
    chain = add_layers(meta, 2)
    config = config_for(DIFFS[:2])
    with pytest.raises(DigestMismatch):
        meta.add_image(sha(b"other"), config, chain)
    with pytest.raises(InvalidArgument, match="chain"):
        meta.add_image(sha(config), config, chain[:1])
    three = config_for(DIFFS[:3])
    with pytest.raises(NotFound):  # layer 3 is not recorded
        meta.add_image(sha(three), three, CHAINS[:3])
    meta.add_layer(CHAINS[2], DIFFS[2], CHAINS[1])
    with pytest.raises(Conflict, match="incomplete"):
        meta.add_image(sha(three), three, CHAINS[:3])
    with pytest.raises(NotFound):
        meta.add_image(sha(config), config, chain, parent=sha(b"no parent"))
    assert meta.list_images() == []


def test_ambiguous_prefix(meta: ImageMetadata) -> None:
    ids = [add_image(meta, 1, tag=str(i)) for i in range(40)]
    # 40 IDs: some pair shares the first hex digit
    first = [i[7] for i in ids]
    shared = next(c for c in first if first.count(c) > 1)
    with pytest.raises(InvalidArgument, match="multiple IDs found with provided prefix"):
        meta.get_image(shared)
    with pytest.raises(InvalidArgument):
        meta.resolve(shared)


def test_tags(meta: ImageMetadata) -> None:
    image_id = add_image(meta)
    assert meta.tag("busybox", image_id) is None
    assert meta.tag("docker.io/library/busybox:1.36", image_id) is None
    assert meta.tag(parse_normalized("localhost:5000/x:v1"), image_id) is None
    assert meta.tags_of(image_id) == [
        "docker.io/library/busybox:1.36",
        "docker.io/library/busybox:latest",
        "localhost:5000/x:v1",
    ]
    assert meta.all_tags() == {image_id: meta.tags_of(image_id)}
    # moving a tag reports where it pointed
    other = add_image(meta, 3)
    assert meta.tag("busybox:latest", other) == image_id
    assert meta.tags_of(other) == ["docker.io/library/busybox:latest"]
    assert meta.untag("busybox") == other
    with pytest.raises(NotFound, match="No such image: busybox:latest"):
        meta.untag("busybox")
    with pytest.raises(NotFound):
        meta.tag("x", sha(b"nope"))
    with pytest.raises(InvalidArgument, match="digest"):
        meta.tag(f"x@{other}", other)
    with pytest.raises(InvalidArgument):
        meta.tag("Bad/Name", other)


def test_repo_digests(meta: ImageMetadata) -> None:
    image_id = add_image(meta)
    manifest = sha(b"manifest")
    meta.add_digest("busybox", manifest, image_id)
    assert meta.digests_of(image_id) == [f"docker.io/library/busybox@{manifest}"]
    assert meta.resolve(f"busybox@{manifest}") == image_id
    with pytest.raises(InvalidArgument):
        meta.add_digest("busybox:latest", manifest, image_id)
    assert meta.untag(f"busybox@{manifest}") == image_id
    assert meta.digests_of(image_id) == []


def test_resolve(meta: ImageMetadata) -> None:
    image_id = add_image(meta)
    hex_id = image_id.removeprefix("sha256:")
    meta.tag("app:v1", image_id)
    assert meta.resolve("app:v1") == image_id
    assert meta.resolve("docker.io/library/app:v1") == image_id
    assert meta.resolve(image_id) == image_id
    assert meta.resolve(hex_id) == image_id
    assert meta.resolve(hex_id[:12]) == image_id
    assert meta.resolve(f"sha256:{hex_id[:5]}") == image_id
    with pytest.raises(NotFound, match="No such image: app:latest"):
        meta.resolve("app")
    with pytest.raises(NotFound, match=r"No such image: sha256:0{64}"):
        meta.resolve("0" * 64)
    with pytest.raises(InvalidArgument):
        meta.resolve("Not A Ref")
    # a tag that looks like an ID prefix wins over the prefix
    other = add_image(meta, 3)
    meta.tag(hex_id[:6], other)
    assert meta.resolve(hex_id[:6]) == other


def test_delete_image(meta: ImageMetadata) -> None:
    image_id = add_image(meta)
    meta.tag("app", image_id)
    with pytest.raises(Conflict, match="referenced"):
        meta.delete_image(image_id)
    meta.untag("app")
    chain = add_layers(meta, 3)
    child_config = config_for(DIFFS[:3])
    child = meta.add_image(sha(child_config), child_config, chain, parent=image_id).id
    assert meta.image_children(image_id) == [child]
    with pytest.raises(Conflict, match="child"):
        meta.delete_image(image_id)
    meta.delete_image(child)
    meta.delete_image(image_id)
    assert meta.list_images() == []
    assert meta.layer_users(CHAINS[0]) == 0
    with pytest.raises(NotFound):
        meta.delete_image(image_id)


def test_each_change_of_images_tags_or_digests_moves_the_generation(
    meta: ImageMetadata,
) -> None:
    seen = [meta.generation]

    def moved() -> bool:
        seen.append(meta.generation)
        return seen[-1] != seen[-2]

    image_id = add_image(meta)
    assert moved()
    meta.resolve(image_id)
    meta.tags_of(image_id)
    assert not moved()  # (reads)
    meta.tag("app", image_id)
    assert moved()
    meta.add_digest("app", sha(b"manifest"), image_id)
    assert moved()
    meta.untag(f"app@{sha(b'manifest')}")
    assert moved()
    meta.untag("app")
    assert moved()
    meta.delete_image(image_id)
    assert moved()


# --- layers ---


def test_layer_lifecycle(meta: ImageMetadata) -> None:
    layer = meta.add_layer(CHAINS[0], DIFFS[0], None)
    assert layer.incomplete and layer.snapshot == CHAINS[0].removeprefix("sha256:")
    assert meta.incomplete_layers() == [layer]
    with pytest.raises(Conflict, match="being written"):
        meta.add_layer(CHAINS[0], DIFFS[0], None)
    with pytest.raises(Conflict, match=r"parent layer .* is incomplete"):
        meta.add_layer(CHAINS[1], DIFFS[1], CHAINS[0])
    done = meta.complete_layer(CHAINS[0], size=1234)
    assert not done.incomplete and done.size == 1234
    assert meta.get_layer(CHAINS[0]) == done
    with pytest.raises(Conflict, match="already present"):
        meta.add_layer(CHAINS[0], DIFFS[0], None)
    child = meta.add_layer(CHAINS[1], DIFFS[1], CHAINS[0], snapshot="short1")
    assert child.parent == CHAINS[0] and child.snapshot == "short1"
    assert meta.layer_children(CHAINS[0]) == 1
    with pytest.raises(NotFound):
        meta.get_layer(CHAINS[3])
    with pytest.raises(NotFound):
        meta.add_layer(CHAINS[3], DIFFS[3], CHAINS[2])


def test_layer_validation(meta: ImageMetadata) -> None:
    with pytest.raises(InvalidArgument, match="chain ID"):
        meta.add_layer(CHAINS[1], DIFFS[1], None)
    with pytest.raises(InvalidArgument):
        meta.add_layer(DIFFS[0], DIFFS[0], None, snapshot="../x")
    meta.add_layer(CHAINS[0], DIFFS[0], None, snapshot="s")
    meta.complete_layer(CHAINS[0])
    with pytest.raises(Conflict, match="snapshot"):
        meta.add_layer(CHAINS[1], DIFFS[1], CHAINS[0], snapshot="s")


def test_layer_removal(meta: ImageMetadata) -> None:
    image_id = add_image(meta, 2)
    with pytest.raises(Conflict, match="child"):
        meta.remove_layer(CHAINS[0])
    with pytest.raises(Conflict, match="used by an image"):
        meta.remove_layer(CHAINS[1])
    meta.delete_image(image_id)
    with pytest.raises(Conflict, match="complete"):
        meta.forget_layer(CHAINS[1])
    removed = meta.remove_layer(CHAINS[1])
    assert removed.chain_id == CHAINS[1]
    assert meta.get_layer(CHAINS[1]).incomplete  # a crash here: start-up finishes it
    assert [layer.chain_id for layer in meta.incomplete_layers()] == [CHAINS[1]]
    meta.forget_layer(CHAINS[1])
    meta.remove_layer(CHAINS[0])
    meta.forget_layer(CHAINS[0])
    assert meta.list_layers() == []


def test_layer_blobs(meta: ImageMetadata) -> None:
    blob = sha(b"compressed")
    gz = "application/vnd.docker.image.rootfs.diff.tar.gzip"
    meta.add_layer_blob(blob, DIFFS[0], gz, 99, "docker.io/library/busybox")
    meta.add_layer_blob(blob, DIFFS[0], gz, 99, "docker.io/library/other")
    meta.add_layer_blob(blob, DIFFS[0], gz, 99, "docker.io/library/other")
    assert meta.diff_id_of_blob(blob) == DIFFS[0]
    assert meta.diff_id_of_blob(sha(b"x")) is None
    found = meta.blobs_of_diff_id(DIFFS[0])
    assert [b.repository for b in found] == ["docker.io/library/busybox", "docker.io/library/other"]
    assert found[0].media_type == gz and found[0].size == 99
    with pytest.raises(InvalidArgument):
        meta.add_layer_blob("nope", DIFFS[0], gz, 1)


# --- leases and GC roots ---


def test_leases(meta: ImageMetadata) -> None:
    lease = meta.create_lease(ttl=60)
    meta.lease_add(lease, "blob", sha(b"b"))
    meta.lease_add(lease, "blob", sha(b"b"))
    meta.lease_add(lease, "layer", CHAINS[0])
    assert meta.leased("blob") == {sha(b"b")}
    assert meta.leased("blob", now_ns=time.time_ns() + 120 * 10**9) == set()
    with pytest.raises(InvalidArgument):
        meta.lease_add(lease, "container", "x")
    with pytest.raises(NotFound):
        meta.lease_add("missing", "blob", sha(b"b"))
    with pytest.raises(Conflict):
        meta.create_lease(lease_id=lease)
    meta.delete_lease(lease)
    assert meta.leased("blob") == set()
    with pytest.raises(NotFound):
        meta.delete_lease(lease)
    with meta.lease() as held:
        meta.lease_add(held, "ingest", "pull-ref")
        assert meta.leased("ingest") == {"pull-ref"}
    assert meta.leased("ingest") == set()
    meta.create_lease(ttl=0.0)
    forever = meta.create_lease(ttl=None)
    assert meta.expire_leases() == 1
    assert [r[0] for r in meta.db.query("SELECT id FROM leases")] == [forever]


def test_reachability(meta: ImageMetadata) -> None:
    image_id = add_image(meta, 2)
    # a dangling layer chain 0 -> 1 -> 2, with 2 not used by any image
    add_layers(meta, 3)
    assert meta.reachable_layers() == set(CHAINS[:2])
    assert [layer.chain_id for layer in meta.unreachable_layers()] == [CHAINS[2]]
    with meta.lease() as lease:
        meta.lease_add(lease, "layer", CHAINS[2])
        assert meta.reachable_layers() == set(CHAINS[:3])
        assert meta.unreachable_layers() == []
        with pytest.raises(Conflict, match="leased"):
            meta.remove_layer(CHAINS[2])

    index, manifest, layer_blob, orphan = (
        sha(x) for x in (b"index", b"manifest", b"layer", b"orphan")
    )
    meta.add_blob(index, 10, "application/vnd.oci.image.index.v1+json", children=[manifest])
    meta.add_blob(
        manifest, 10, "application/vnd.oci.image.manifest.v1+json", children=[image_id, layer_blob]
    )
    meta.add_blob(layer_blob, 10, "application/vnd.oci.image.layer.v1.tar+gzip")
    meta.add_blob(orphan, 10)
    assert meta.blob_media_type(index) == "application/vnd.oci.image.index.v1+json"
    assert meta.reachable_blobs() == {image_id}
    meta.add_digest("busybox", index, image_id)
    assert meta.reachable_blobs() == {image_id, index, manifest, layer_blob}
    with meta.lease() as lease:
        meta.lease_add(lease, "blob", orphan)
        assert orphan in meta.reachable_blobs()
    assert orphan not in meta.reachable_blobs()
    meta.forget_blob(orphan)
    assert meta.blob_media_type(orphan) is None


def test_unreachable_layers_children_first(meta: ImageMetadata) -> None:
    add_layers(meta, 4)
    assert [layer.chain_id for layer in meta.unreachable_layers()] == list(reversed(CHAINS))
    for layer in meta.unreachable_layers():
        meta.remove_layer(layer.chain_id)
        meta.forget_layer(layer.chain_id)
    assert meta.list_layers() == []


def test_config_bytes_are_kept_exactly(meta: ImageMetadata) -> None:
    chain = add_layers(meta, 1)
    config = json.dumps(
        {
            "os": "linux",
            "architecture": "arm64",
            "rootfs": {"type": "layers", "diff_ids": DIFFS[:1]},
        },
        indent=4,
    ).encode()
    record = meta.add_image(sha(config), config, chain)
    assert meta.get_image(record.id).config == config
    assert record.created == ""
