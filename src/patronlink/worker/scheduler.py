"""Scheduled patron imports: each source's cron expression, run once per due time.

``run_due_imports`` is what the worker loop calls every half minute or so, from as many worker
processes as there are. For each source it works out the schedule's latest due time (in the
agency's time zone) and tries to claim it together with the source's run lock, in one conditional
UPDATE (see ``storage/import_runs.py``). Only the process whose UPDATE matched runs the import, so
a due time runs exactly once whatever the number of workers. When a run of the source is in
progress (a staff run, say) the due time stays unclaimed and the next call tries again. After
downtime only the latest missed due time runs, once. A source's first due time is the first one
after it was configured.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from zoneinfo import ZoneInfo

import structlog
from croniter import croniter

from patronlink.domain.import_runs import Trigger
from patronlink.services.clock import Clock
from patronlink.services.import_patrons import (
    LEASE,
    RunObserver,
    execute_run,
    start_run,
    sweep_interrupted,
)
from patronlink.storage.database import Database

log = structlog.get_logger("patronlink.scheduler")


def latest_due(schedule: str, timezone: str, now: dt.datetime) -> dt.datetime:
    """The schedule's latest due time at or before ``now``, in UTC."""
    local = now.astimezone(ZoneInfo(timezone))
    # croniter's get_prev is strictly before its start; a second later includes ``now`` itself.
    previous = croniter(schedule, local + dt.timedelta(seconds=1)).get_prev(dt.datetime)
    assert isinstance(previous, dt.datetime)
    return previous.astimezone(dt.UTC)


def due_sources(db: Database, now: dt.datetime) -> list[tuple[str, dt.datetime]]:
    """(source id, due time) of every source whose latest due time has not been claimed yet."""
    due: list[tuple[str, dt.datetime]] = []
    with db.transaction() as repos:
        for source in repos.scheduled_sources():
            agency = repos.agencies.get(source.agency_id)
            if agency is None:
                continue
            when = latest_due(source.schedule, agency.timezone, now)
            last = repos.source_state.last_due(source.id) or source.created_at
            if when > last:
                due.append((source.id, when))
    return due


def run_due_imports(
    db: Database,
    clock: Clock,
    environ: Mapping[str, str],
    *,
    observer: RunObserver | None = None,
    lease: dt.timedelta = LEASE,
) -> list[int]:
    """Run every import whose schedule is due and not yet claimed; returns the ids of the runs.

    Safe to call from many processes at once: each due time of each source starts one run.
    The runs happen in the calling thread, one after another. First, runs whose process died
    (their hold on the source expired) are marked failed and their sources freed.
    """
    sweep_interrupted(db, clock)
    started: list[int] = []
    for source_id, due_at in due_sources(db, clock()):
        run_id = start_run(db, source_id, Trigger.SCHEDULE, clock, due_at=due_at, lease=lease)
        if run_id is None:
            log.debug("import due time taken or source busy", source=source_id, due_at=due_at)
            continue
        started.append(run_id)
        execute_run(db, run_id, clock=clock, environ=environ, observer=observer, lease=lease)
    return started
