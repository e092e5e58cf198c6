"""Patron imports: sources and runs with their counts, one run with its errors, run now, dry run.

"Run now" records the run before it answers and works in a background thread, as the JSON API
does; the run's page refreshes itself (a meta refresh, no script) until the run has finished.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Path, Query
from starlette.responses import Response

from patronlink.domain.import_runs import Trigger
from patronlink.domain.paging import MAX_PAGE
from patronlink.services import import_patrons, import_runs
from patronlink.services.import_metrics import ImportMetrics
from patronlink.services.import_patrons import run_import
from patronlink.web.schemas import Id32Path
from patronlink.web.staff.pages import FormDep, StaffDep

router = APIRouter(prefix="/staff")
SourceId = Annotated[str, Path(max_length=64)]
MAX_PREVIEW_CHANGES = 500
RUNS_PAGE = 50
ERRORS_PAGE = 500


@router.get("/imports")
def list_imports(
    page: StaffDep,
    agency: Annotated[str, Query(max_length=32)] = "",
    source: Annotated[str, Query(max_length=64)] = "",
    offset: Annotated[int, Query(ge=0, le=2**62)] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = RUNS_PAGE,
) -> Response:
    scope = page.agency_scope(agency)
    if source:
        import_runs.source_in_scope(page.db, source, page.staff.agency_id)
    runs = import_runs.page_runs(page.db, scope, source or None, limit, offset)
    return page.render(
        "imports.html",
        title=page.t("imports"),
        sources=import_runs.sources(page.db, scope),
        runs=runs.items,
        pager=page.pager(runs),
        agencies=page.agencies(),
        filters={"agency": scope or "", "source": source},
    )


@router.get("/imports/runs/{run_id}")
def show_run(
    page: StaffDep,
    run_id: Id32Path,
    offset: Annotated[int, Query(ge=0, le=2**62)] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = ERRORS_PAGE,
) -> Response:
    run, errors = import_runs.run_with_errors(
        page.db, run_id, page.staff.agency_id, limit=limit, offset=offset
    )
    return page.render(
        "import_run.html",
        title=page.t("run_n", id=run_id),
        run=run,
        errors=errors.items,
        pager=page.pager(errors),
    )


@router.post("/imports/{source_id}/run")
def run_now(page: StaffDep, _form: FormDep, source_id: SourceId) -> Response:
    import_runs.source_in_scope(page.db, source_id, page.staff.agency_id)
    lease = dt.timedelta(seconds=page.request.app.state.settings.import_lease_seconds)
    metrics: ImportMetrics = page.request.app.state.import_metrics
    run_id = import_patrons.run_now(
        page.db,
        source_id,
        clock=page.clock,
        environ=page.request.app.state.environ,
        lease=lease,
        actor=page.actor,
        observer=metrics,
    )
    return page.redirect(f"/staff/imports/runs/{run_id}", page.t("run_started", id=run_id))


@router.post("/imports/{source_id}/preview")
def preview(page: StaffDep, _form: FormDep, source_id: SourceId) -> Response:
    """A dry run: what an import would change now; nothing is recorded or changed."""
    import_runs.source_in_scope(page.db, source_id, page.staff.agency_id)
    report = run_import(
        page.db,
        source_id,
        trigger=Trigger.STAFF,
        clock=page.clock,
        environ=page.request.app.state.environ,
        dry_run=True,
    )
    return page.render(
        "import_preview.html",
        title=page.t("preview_of", source=source_id),
        report=report,
        changes=report.changes[:MAX_PREVIEW_CHANGES],
        errors=report.errors[:MAX_PREVIEW_CHANGES],
    )
