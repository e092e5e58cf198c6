"""What is in the database, to show that a refused request wrote nothing."""

from __future__ import annotations

import hashlib

from sqlalchemy import func, select

from patronlink.storage import tables
from patronlink.storage.database import Database


def row_counts(db: Database) -> dict[str, int]:
    """Rows per table, every table of the schema."""
    with db.engine.connect() as conn:
        return {
            t.name: conn.execute(select(func.count()).select_from(t)).scalar_one()
            for t in tables.metadata.sorted_tables
        }


def contents_digest(db: Database) -> dict[str, str]:
    """A digest of every row of every table: any insert, update or delete changes it."""
    digests = {}
    with db.engine.connect() as conn:
        for table in tables.metadata.sorted_tables:
            rows = conn.execute(select(table).order_by(*table.primary_key.columns)).all()
            digests[table.name] = hashlib.sha256(repr(rows).encode()).hexdigest()
    return digests
