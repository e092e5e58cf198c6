"""``/readyz`` of ``serve`` tells the truth (issue 13, item 5).

It used to run ``SELECT 1``: a database that refuses every write (PostgreSQL's
``default_transaction_read_only``, a SQLite file opened read-only) and a dead in-process worker
both looked ready. Now it probes a write, and asks the worker's supervisor; a killed worker is
logged at error level, reported until it runs again, and started again after a back-off.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text

from patronlink.settings import Settings
from patronlink.storage.database import Database
from patronlink.web.app import create_app
from tests.conftest import FrozenClock
from tests.support.databases import postgres_base_url
from tests.support.live_server import live_server


def _get_readyz(url: str) -> httpx.Response:
    return httpx.get(f"{url}/readyz", timeout=10)


@pytest.fixture
def read_only(db: Database, backend: str, tmp_path: Path) -> Iterator[Database]:
    """The test's database, opened so that it refuses every write."""
    if backend == "sqlite":
        path = db.engine.url.database
        assert path is not None
        ro = Database(create_engine(f"sqlite:///file:{path}?mode=ro&uri=true"))
        try:
            yield ro
        finally:
            ro.dispose()
        return
    name = db.engine.url.database
    admin = create_engine(postgres_base_url(), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on'))
    db.engine.dispose()  # the setting applies to new connections
    try:
        yield db
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'ALTER DATABASE "{name}" RESET default_transaction_read_only'))
        admin.dispose()
        db.engine.dispose()


def test_readyz_is_ready_on_a_writable_database(
    db: Database, settings: Settings, clock: FrozenClock
) -> None:
    with live_server(create_app(settings, db, clock)) as url:
        answer = _get_readyz(url)
    assert answer.status_code == 200
    assert answer.json() == {"status": "ready"}


def test_readyz_is_503_with_the_reason_when_the_database_refuses_writes(
    read_only: Database, settings: Settings, clock: FrozenClock
) -> None:
    assert read_only.ping(), "the database must still answer reads: only writes are refused"
    with live_server(create_app(settings, read_only, clock)) as url:
        answer = _get_readyz(url)
    assert answer.status_code == 503
    body = answer.json()
    assert body["status"] == "unavailable"
    assert "database refuses a write" in body["error"]
    assert "read-only" in body["error"] or "readonly" in body["error"], body


def test_a_killed_worker_is_logged_reported_and_started_again(
    db: Database, settings: Settings, clock: FrozenClock, caplog: pytest.LogCaptureFixture
) -> None:
    settings = settings.model_copy(
        update={"backoff_cap_seconds": 2.0, "dispatch_poll_seconds": 0.05}
    )
    app = create_app(settings, db, clock, run_worker=True)
    caplog.set_level(logging.INFO, logger="patronlink")
    with live_server(app) as url:
        assert _get_readyz(url).status_code == 200
        supervisor = app.state.worker
        task = supervisor.task
        task.get_loop().call_soon_threadsafe(task.cancel)

        # Red, with the reason, until the worker runs again; then green.
        seen: list[httpx.Response] = []
        deadline = time.monotonic() + 20
        while not (seen and seen[-1].status_code == 200 and len(seen) > 1):
            assert time.monotonic() < deadline, [r.text for r in seen[-3:]]
            answer = _get_readyz(url)
            if answer.status_code == 503 or seen:
                seen.append(answer)
            time.sleep(0.01)
        assert supervisor.task is not task, "the worker was not started again"
        assert supervisor.restarts == 1

    red = seen[0]
    assert red.status_code == 503
    assert "worker stopped: it was cancelled" in red.json()["error"], red.json()
    deaths = [
        r
        for r in caplog.records
        if r.levelno == logging.ERROR and "the worker in this process died" in r.getMessage()
    ]
    assert len(deaths) == 1, [r.getMessage() for r in caplog.records]
