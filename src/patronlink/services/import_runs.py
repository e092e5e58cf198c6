"""Reading import runs for staff: runs in an agency's scope or of one source, one run with its
record errors."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from patronlink.domain.errors import NotFound
from patronlink.domain.import_records import RecordError
from patronlink.domain.paging import Paged
from patronlink.storage.database import Database
from patronlink.storage.import_runs import RunRow


@dataclass(frozen=True)
class SourceView:
    id: str
    agency_id: str
    settings: dict[str, Any]
    last_run: RunRow | None


def sources(db: Database, agency_id: str | None) -> list[SourceView]:
    with db.transaction() as repos:
        last = repos.overview.last_run_per_source(agency_id)
        return [
            SourceView(source_id, agency, settings, last.get(source_id))
            for source_id, agency, settings in repos.import_sources.list(agency_id)
        ]


def page_runs(
    db: Database, agency_id: str | None, source_id: str | None, limit: int, offset: int = 0
) -> Paged[RunRow]:
    """A page of runs, newest first, in an agency's scope (None: every agency) or of one source,
    with the total for "1-100 of 117"."""
    with db.transaction() as repos:
        overview = repos.overview
        return Paged(
            overview.runs(agency_id, source_id=source_id, limit=limit, offset=offset),
            overview.count_runs(agency_id, source_id=source_id),
            offset,
            limit,
        )


def run_with_errors(
    db: Database, run_id: int, agency_id: str | None, *, limit: int, offset: int = 0
) -> tuple[RunRow, Paged[RecordError]]:
    """One run and a page of its record errors and warnings, by record number; another agency's
    run is reported as not found."""
    with db.transaction() as repos:
        runs = repos.import_runs
        run = runs.get(run_id)
        if run is None or (agency_id is not None and run.agency_id != agency_id):
            raise NotFound(f"import run {run_id} does not exist")
        errors = runs.errors(run_id, limit=limit, offset=offset)
        return run, Paged(errors, runs.count_errors(run_id), offset, limit)


def source_in_scope(db: Database, source_id: str, agency_id: str | None) -> str:
    """The source's agency; ``NotFound`` when there is no such source in the caller's scope."""
    with db.transaction() as repos:
        found = repos.import_sources.get(source_id)
    if found is None or (agency_id is not None and found[0] != agency_id):
        raise NotFound(f"import source {source_id!r} does not exist")
    return found[0]


def source_runs(db: Database, source_id: str, *, limit: int, offset: int = 0) -> list[RunRow]:
    """The source's runs, newest first."""
    with db.transaction() as repos:
        return repos.import_runs.recent(source_id, limit=limit, offset=offset)


def source_run(
    db: Database, source_id: str, run_id: int, *, errors: bool
) -> tuple[RunRow, list[RecordError] | None]:
    """One run of the source, with all its record errors when asked (None otherwise);
    ``NotFound`` when the source has no such run."""
    with db.transaction() as repos:
        runs = repos.import_runs
        run = runs.get(run_id)
        if run is None or run.source_id != source_id:
            raise NotFound(f"import run {run_id} of source {source_id!r} does not exist")
        return run, runs.errors(run_id) if errors else None
