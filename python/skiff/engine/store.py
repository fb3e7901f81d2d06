"""Containers in SQLite (the ``containers`` table of :mod:`skiff.store.db`): each
row holds the container's whole record as JSON, rewritten on every change."""

from __future__ import annotations

import json
import sqlite3
import time

from skiff import jsontext
from skiff.engine.container import Container
from skiff.errors import Conflict
from skiff.store.db import Database


class ContainerStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def add(self, c: Container) -> None:
        try:
            self.db.execute(
                "INSERT INTO containers (id, name, image_id, record, created_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (c.id, c.name, c.image_id, _record_text(c), time.time_ns()),
            )
        except sqlite3.IntegrityError:
            raise Conflict(f'the container name "/{c.name}" is already in use') from None

    def save(self, c: Container) -> None:
        """Rewrites the record (not the name column: see rename)."""
        self.db.execute("UPDATE containers SET record = ? WHERE id = ?", (_record_text(c), c.id))

    def rename(self, c: Container) -> None:
        """Saves the record of a container that has a new name."""
        try:
            self.db.execute(
                "UPDATE containers SET name = ?, record = ? WHERE id = ?",
                (c.name, _record_text(c), c.id),
            )
        except sqlite3.IntegrityError:
            raise Conflict(f'the container name "/{c.name}" is already in use') from None

    def delete(self, container_id: str) -> None:
        self.db.execute("DELETE FROM containers WHERE id = ?", (container_id,))

    def all(self) -> list[Container]:
        rows = self.db.query("SELECT record FROM containers ORDER BY created_at")
        return [Container.from_record(json.loads(r[0])) for r in rows]

    def image_in_use(self, image_id: str) -> bool:
        row = self.db.query_one("SELECT 1 FROM containers WHERE image_id = ? LIMIT 1", (image_id,))
        return row is not None


def _record_text(c: Container) -> str:
    return jsontext.dumps(c.record()).decode()
