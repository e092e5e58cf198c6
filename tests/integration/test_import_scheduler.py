"""Scheduled imports: once per due time, whatever the number of workers; and a large import."""

from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path

import pytest

from patronlink.domain.errors import ImportInProgress
from patronlink.domain.import_runs import RunStatus, Trigger
from patronlink.services.import_patrons import run_import, start_run
from patronlink.storage import tables
from patronlink.storage.database import Database
from patronlink.worker.scheduler import latest_due, run_due_imports
from tests.conftest import FrozenClock
from tests.integration.import_fixtures import SOURCE, add_source, count
from tests.support.feeds import folio_body, folio_stream, folio_user


def scheduled_source(db: Database, clock: FrozenClock, tmp_path: Path) -> None:
    feed = tmp_path / "feed.json"
    feed.write_bytes(folio_body([folio_user(i) for i in range(5)]))
    add_source(db, clock, feed.as_uri(), schedule="0 3 * * *")


def test_latest_due_is_in_the_agencys_time_zone() -> None:
    now = dt.datetime(2026, 11, 24, 2, 30, tzinfo=dt.UTC)  # 03:30 in Copenhagen
    assert latest_due("0 3 * * *", "Europe/Copenhagen", now) == dt.datetime(
        2026, 11, 24, 2, 0, tzinfo=dt.UTC
    )
    exactly = dt.datetime(2026, 11, 24, 2, 0, tzinfo=dt.UTC)
    assert latest_due("0 3 * * *", "Europe/Copenhagen", exactly) == exactly


def test_runs_once_per_due_time(db: Database, clock: FrozenClock, tmp_path: Path) -> None:
    scheduled_source(db, clock, tmp_path)
    # Configured at 11:00 local: today's 03:00 was before that, so nothing is due yet.
    assert run_due_imports(db, clock, {}) == []
    clock.now = dt.datetime(2026, 11, 24, 2, 0, 30, tzinfo=dt.UTC)
    ran = run_due_imports(db, clock, {})
    assert len(ran) == 1
    assert run_due_imports(db, clock, {}) == []
    clock.advance(hours=12)
    assert run_due_imports(db, clock, {}) == []
    # Three days of downtime: the latest missed due time runs, once.
    clock.advance(days=3)
    assert len(run_due_imports(db, clock, {})) == 1
    assert run_due_imports(db, clock, {}) == []
    with db.transaction() as repos:
        runs = repos.import_runs.recent(SOURCE)
    assert [r.trigger for r in runs] == [Trigger.SCHEDULE, Trigger.SCHEDULE]
    assert all(r.status is RunStatus.SUCCEEDED for r in runs)


def test_a_busy_source_is_tried_again(db: Database, clock: FrozenClock, tmp_path: Path) -> None:
    scheduled_source(db, clock, tmp_path)
    clock.now = dt.datetime(2026, 11, 24, 2, 0, 30, tzinfo=dt.UTC)
    held = start_run(db, SOURCE, Trigger.STAFF, clock)
    with pytest.raises(ImportInProgress):
        run_import(db, SOURCE, trigger=Trigger.CLI, clock=clock, environ={})
    assert run_due_imports(db, clock, {}) == []  # the staff run holds the source
    from patronlink.services.import_patrons import execute_run

    assert held is not None
    execute_run(db, held, clock=clock, environ={})
    assert len(run_due_imports(db, clock, {})) == 1  # the due time was not lost


@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_racing_schedulers_start_one_run(db: Database, clock: FrozenClock, tmp_path: Path) -> None:
    scheduled_source(db, clock, tmp_path)
    clock.now = dt.datetime(2026, 11, 24, 2, 0, 30, tzinfo=dt.UTC)

    def worker(barrier: threading.Barrier, results: list[list[int]]) -> None:
        barrier.wait()
        results.append(run_due_imports(db, clock, {}))

    for _ in range(5):
        results: list[list[int]] = []
        barrier = threading.Barrier(8)
        threads = [threading.Thread(target=worker, args=(barrier, results)) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert sum(len(r) for r in results) == 1
        clock.advance(days=1)
    assert count(db, tables.import_runs) == 5


@pytest.mark.slow
def test_thirty_thousand_records(db: Database, clock: FrozenClock, tmp_path: Path) -> None:
    feed = tmp_path / "big.json"
    with feed.open("wb") as out:
        for chunk in folio_stream(30_000):
            out.write(chunk)
    add_source(db, clock, feed.as_uri(), deactivate_missing=True)
    first = run_import(db, SOURCE, trigger=Trigger.CLI, clock=clock, environ={})
    assert first.status is RunStatus.SUCCEEDED, first.message
    assert first.counts.created == 30_000
    with feed.open("wb") as out:
        for chunk in folio_stream(30_000, changed_every=10):
            out.write(chunk)
    second = run_import(db, SOURCE, trigger=Trigger.CLI, clock=clock, environ={})
    assert (second.counts.updated, second.counts.unchanged) == (3_000, 27_000)
    assert count(db, tables.patrons) == 30_000
