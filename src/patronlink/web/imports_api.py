"""Staff API for patron import: start a run, list runs, one run with its record errors.

``POST /api/v1/import-sources/{id}/runs`` claims the source and records the run before it answers
(409 when a run of the source is in progress), then runs the import in a background thread and
answers 202 with the run as ``running``; poll ``GET .../runs/{run_id}``. With ``?wait=true`` it runs
the import in the request and answers 200 with the finished run.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Response
from pydantic import BaseModel

from patronlink.domain.errors import NotFound
from patronlink.domain.import_records import RecordError
from patronlink.services import import_runs
from patronlink.services.import_metrics import ImportMetrics
from patronlink.services.import_patrons import run_now, source_agency
from patronlink.storage.database import RunRow
from patronlink.web.deps import ActorDep, ClockDep, DbDep, ScopeDep, refuse_nul_in_url
from patronlink.web.paging import PAGED_HEADERS, set_has_more
from patronlink.web.schemas import ErrorOut, Id32Path, Offset

router = APIRouter(
    prefix="/api/v1/import-sources",
    tags=["patron import"],
    dependencies=[Depends(refuse_nul_in_url)],
    responses={
        401: {"model": ErrorOut, "description": "no or invalid token"},
        403: {"model": ErrorOut, "description": "the source belongs to another agency"},
        404: {"model": ErrorOut, "description": "no such source or run"},
    },
)

SourceId = Annotated[str, Path(max_length=64, description="the import source's id")]


class RecordErrorOut(BaseModel):
    """A finding about one record: ``error`` (not imported) or ``warning`` (imported, with the
    named field set aside)."""

    record_number: int
    external_id: str | None
    field: str | None = None
    severity: str = "error"
    reason: str

    @classmethod
    def of(cls, e: RecordError) -> RecordErrorOut:
        return cls(
            record_number=e.number,
            external_id=e.external_id,
            field=e.field,
            severity=e.severity.value,
            reason=e.reason,
        )


class RunOut(BaseModel):
    id: int
    source_id: str
    trigger: str
    status: str
    started_at: dt.datetime
    finished_at: dt.datetime | None
    due_at: dt.datetime | None
    records: int
    created: int
    updated: int
    unchanged: int
    deactivated: int
    failed: int
    warnings: int
    message: str | None
    errors: list[RecordErrorOut] | None = None

    @classmethod
    def of(cls, run: RunRow, errors: list[RecordErrorOut] | None = None) -> RunOut:
        c = run.counts
        return cls(
            id=run.id,
            source_id=run.source_id,
            trigger=run.trigger.value,
            status=run.status.value,
            started_at=run.started_at,
            finished_at=run.finished_at,
            due_at=run.due_at,
            records=c.records,
            created=c.created,
            updated=c.updated,
            unchanged=c.unchanged,
            deactivated=c.deactivated,
            failed=c.failed,
            warnings=c.warnings,
            message=run.message,
            errors=errors,
        )


def _metrics(request: Request) -> ImportMetrics:
    """The app's import metrics (made with the app, in its own registry)."""
    metrics: ImportMetrics = request.app.state.import_metrics
    return metrics


def _source_in_scope(db: DbDep, scope: ScopeDep, source_id: str) -> str:
    try:
        agency_id = source_agency(db, source_id)
    except NotFound:
        if scope.agency_id is not None:
            raise HTTPException(403, "this token is not valid for that source") from None
        raise
    if not scope.allows(agency_id):
        raise HTTPException(403, "this token is not valid for that source")
    return agency_id


def _run_out(db: DbDep, source_id: str, run_id: int, *, errors: bool) -> RunOut:
    run, found = import_runs.source_run(db, source_id, run_id, errors=errors)
    listed = [RecordErrorOut.of(e) for e in found] if found is not None else None
    return RunOut.of(run, listed)


@router.post(
    "/{source_id}/runs",
    status_code=202,
    response_model=RunOut,
    responses={
        200: {"model": RunOut, "description": "with wait=true: the finished run"},
        409: {"model": ErrorOut, "description": "a run of this source is in progress"},
    },
)
def start(
    source_id: SourceId,
    request: Request,
    response: Response,
    db: DbDep,
    scope: ScopeDep,
    clock: ClockDep,
    actor: ActorDep,
    wait: Annotated[bool, Query(description="run in the request; answer when done")] = False,
) -> RunOut:
    _source_in_scope(db, scope, source_id)
    lease = dt.timedelta(seconds=request.app.state.settings.import_lease_seconds)
    run_id = run_now(
        db,
        source_id,
        clock=clock,
        environ=request.app.state.environ,
        lease=lease,
        actor=actor,
        observer=_metrics(request),
        wait=wait,
    )
    if wait:
        response.status_code = 200
    return _run_out(db, source_id, run_id, errors=wait)


@router.get(
    "/{source_id}/runs", response_model=list[RunOut], responses={200: {"headers": PAGED_HEADERS}}
)
def list_runs(
    source_id: SourceId,
    db: DbDep,
    scope: ScopeDep,
    request: Request,
    response: Response,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Offset = 0,
) -> list[RunOut]:
    _source_in_scope(db, scope, source_id)
    # One row past the page says whether another page exists, without counting every run.
    runs = import_runs.source_runs(db, source_id, limit=limit + 1, offset=offset)
    set_has_more(request, response, offset, limit, len(runs) > limit)
    return [RunOut.of(r) for r in runs[:limit]]


@router.get("/{source_id}/runs/{run_id}", response_model=RunOut)
def get_run(source_id: SourceId, run_id: Id32Path, db: DbDep, scope: ScopeDep) -> RunOut:
    """One run with all its record errors (record number, external id, reason)."""
    _source_in_scope(db, scope, source_id)
    return _run_out(db, source_id, run_id, errors=True)
