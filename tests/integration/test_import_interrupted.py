"""A run whose process died does not block its source: its hold expires and it is marked failed.

These are the in-process halves of ``tests/e2e/test_import_kill.py``: a run started and never
finished (what a SIGKILLed process leaves), a run that outlived its lease, and the worker's sweep.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from pathlib import Path

import pytest

from patronlink.domain.errors import ImportInProgress
from patronlink.domain.import_runs import RunStatus, Trigger
from patronlink.services.clock import system_clock
from patronlink.services.import_patrons import (
    LEASE,
    RunReport,
    execute_run,
    run_import,
    start_run,
    sweep_interrupted,
)
from patronlink.storage import tables
from patronlink.storage.database import Database
from patronlink.storage.import_runs import INTERRUPTED
from patronlink.worker.scheduler import run_due_imports
from tests.conftest import FrozenClock
from tests.integration.import_fixtures import SOURCE, add_source, count, patron_rows
from tests.support.feeds import folio_body, folio_user
from tests.support.source_server import Feed, source_server


@pytest.fixture
def source(db: Database, clock: FrozenClock, tmp_path: Path) -> None:
    feed = tmp_path / "feed.json"
    feed.write_bytes(folio_body([folio_user(i) for i in range(20)]))
    add_source(db, clock, feed.as_uri())


def run_row(db: Database, run_id: int) -> tuple[RunStatus, str | None]:
    with db.transaction() as repos:
        row = repos.import_runs.get(run_id)
    assert row is not None
    return row.status, row.message


def held_by(db: Database, clock: FrozenClock) -> int | None:
    with db.transaction() as repos:
        return repos.source_state.running_run(SOURCE, clock())


@pytest.mark.usefixtures("source")
def test_a_dead_runs_source_is_free_after_the_lease_and_the_run_marked_failed(
    db: Database, clock: FrozenClock
) -> None:
    dead = start_run(db, SOURCE, Trigger.CLI, clock)  # ...and its process is killed here
    assert dead is not None
    clock.advance(seconds=LEASE.total_seconds() - 1)
    with pytest.raises(ImportInProgress):
        run_import(db, SOURCE, trigger=Trigger.CLI, clock=clock, environ={})
    assert run_row(db, dead)[0] is RunStatus.RUNNING
    clock.advance(seconds=2)
    report = run_import(db, SOURCE, trigger=Trigger.CLI, clock=clock, environ={})
    assert report.status is RunStatus.SUCCEEDED
    assert report.counts.created == 20
    assert run_row(db, dead) == (RunStatus.FAILED, INTERRUPTED)
    assert held_by(db, clock) is None


@pytest.mark.usefixtures("source")
def test_the_workers_sweep_marks_a_dead_run_failed_without_a_new_run(
    db: Database, clock: FrozenClock
) -> None:
    dead = start_run(db, SOURCE, Trigger.STAFF, clock)
    assert dead is not None
    assert sweep_interrupted(db, clock) == []  # the lease is live: the run may be working
    clock.advance(seconds=LEASE.total_seconds() + 1)
    assert run_due_imports(db, clock, {}) == []  # the source has no schedule: nothing started
    assert run_row(db, dead) == (RunStatus.FAILED, INTERRUPTED)
    assert held_by(db, clock) is None
    assert sweep_interrupted(db, clock) == []
    assert count(db, tables.import_runs) == 1


@pytest.mark.usefixtures("source")
def test_a_run_that_lost_its_hold_commits_nothing(db: Database, clock: FrozenClock) -> None:
    before = patron_rows(db)
    slow = start_run(db, SOURCE, Trigger.CLI, clock)
    assert slow is not None
    # The slow run's process stalls past its lease (no renewal reached the database), and another
    # run takes the source over; then the stalled run wakes up and synchronises.
    clock.advance(seconds=LEASE.total_seconds() + 1)
    other = start_run(db, SOURCE, Trigger.STAFF, clock)
    assert other is not None
    assert run_row(db, slow) == (RunStatus.FAILED, INTERRUPTED)
    late = execute_run(db, slow, clock=clock, environ={})
    assert late.status is RunStatus.FAILED
    assert late.message is not None
    assert "lost its hold" in late.message
    assert patron_rows(db) == before
    assert held_by(db, clock) == other  # the late run did not release the other's hold
    assert execute_run(db, other, clock=clock, environ={}).status is RunStatus.SUCCEEDED
    assert count(db, tables.patrons) == 20


def test_a_live_run_renews_its_hold(db: Database, clock: FrozenClock) -> None:
    """A run that takes many leases (a slow source) keeps its source all along."""
    lease = dt.timedelta(seconds=1)  # renewed every 0.25 s by the run's hold thread
    with source_server() as server:
        server.feeds["/slow.json"] = Feed(
            body=folio_body([folio_user(i) for i in range(5)]), delay=4.0
        )
        add_source(db, clock, f"{server.url}/slow.json")
        run_id = start_run(db, SOURCE, Trigger.CLI, system_clock, lease=lease)
        assert run_id is not None
        reports: list[RunReport] = []
        worker = threading.Thread(
            target=lambda: reports.append(
                execute_run(db, run_id, clock=system_clock, environ={}, lease=lease)
            )
        )
        worker.start()
        try:
            time.sleep(2.5)  # two and a half leases into the source's four-second wait
            with pytest.raises(ImportInProgress):
                start_run(db, SOURCE, Trigger.STAFF, system_clock, lease=lease)
        finally:
            worker.join(30)
    assert [r.status for r in reports] == [RunStatus.SUCCEEDED]
    assert held_by(db, clock) is None  # released at the end
