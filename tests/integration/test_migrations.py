"""The Alembic migrations build exactly the schema that storage/tables.py describes."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from patronlink.storage.database import Database
from patronlink.storage.migrate import current_revision, head_revision, upgrade
from patronlink.storage.tables import metadata


def test_migrated_schema_matches_the_tables(db: Database) -> None:
    assert current_revision(db.engine) == head_revision(db.engine)
    with db.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        differences = compare_metadata(context, metadata)
    assert differences == []


def test_upgrade_twice_is_harmless(db: Database) -> None:
    upgrade(db.engine)
    upgrade(db.engine)
    assert current_revision(db.engine) == head_revision(db.engine)
