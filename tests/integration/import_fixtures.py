"""Shared set-up of the patron-import integration tests: an agency, a source, counting rows."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from patronlink.config.schema import AgencySettings, ImportSourceConfig
from patronlink.domain.agency import Agency
from patronlink.domain.patron import Patron
from patronlink.storage import tables
from patronlink.storage.database import Database
from tests.conftest import FrozenClock

AGENCY = "DK-761500"
SOURCE = "ucl-students"


def add_source(
    db: Database, clock: FrozenClock, url: str, source_id: str = SOURCE, **settings: Any
) -> None:
    config = ImportSourceConfig.model_validate(
        {"id": source_id, "agency": AGENCY, "url": url, "format": "folio-json", **settings}
    )
    with db.transaction() as repos:
        if repos.agencies.get(AGENCY) is None:
            repos.agencies.upsert(Agency(id=AGENCY, name="Horsens"), AgencySettings(), clock())
        repos.import_sources.upsert(
            source_id,
            AGENCY,
            config.model_dump(mode="json", exclude={"id", "agency"}),
            clock(),
        )


def patrons_by_id(db: Database) -> dict[str, Patron]:
    with db.transaction() as repos:
        found = repos.patrons.search(AGENCY, None, limit=100_000)
    return {p.patron_id: p for p in found}


def count(db: Database, table: Any) -> int:
    with db.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def patron_rows(db: Database) -> list[tuple[Any, ...]]:
    """Every patron row and phone row, to prove that a failed run changed nothing."""
    with db.engine.connect() as conn:
        rows = [
            tuple(r) for r in conn.execute(select(tables.patrons).order_by(tables.patrons.c.id))
        ]
        rows += [tuple(r) for r in conn.execute(select(tables.patron_phones))]
    return rows
