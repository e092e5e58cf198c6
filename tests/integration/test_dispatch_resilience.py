"""The dispatcher survives its database (issue 14, item 1), on both backends.

Before: the first failed claim or outcome write ended the dispatcher; the texts it had sent were
sent again after their lease, and the texts it had claimed waited for theirs. Now the outcomes wait
in memory and are written when the database is back (each text reaches the gateway once), and a
dispatcher that must end gives back what it claimed and did not send.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import create_engine, text

from patronlink.domain.dispatch import DispatchSettings
from patronlink.gateways.base import GatewayConfig, OutgoingSms, SendResult
from patronlink.services.outbox import queue_sms
from patronlink.settings import Settings
from patronlink.storage.database import Database
from patronlink.storage.engine import make_engine
from patronlink.worker.dispatcher import Dispatcher
from patronlink.worker.health import Backoff, Loop
from tests.conftest import FrozenClock
from tests.integration.test_outbox import AGENCY, make_agency
from tests.support.databases import postgres_base_url
from tests.support.fake_gateway import ScriptedGateway

TEXTS = 30
OUTAGE_SECONDS = 2.0


@contextmanager
def database_away(db: Database) -> Iterator[Callable[[], None]]:
    """Yields a function that takes the database away for OUTAGE_SECONDS (in the background);
    on exit the database is surely back.

    SQLite: another connection holds the write lock (writers get "database is locked" after
    their busy timeout). PostgreSQL: the database refuses connections and its backends are cut.
    """
    timers: list[threading.Timer] = []
    back: list[Callable[[], None]] = []
    if db.engine.dialect.name == "sqlite":
        path = db.engine.url.database
        assert path is not None
        holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)

        def away() -> None:
            holder.execute("BEGIN EXCLUSIVE")

        def restore() -> None:
            if holder.in_transaction:
                holder.execute("ROLLBACK")

    else:
        name = db.engine.url.database
        admin = create_engine(postgres_base_url(), isolation_level="AUTOCOMMIT")

        def away() -> None:
            with admin.connect() as conn:
                conn.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false'))
                conn.execute(
                    text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE datname = :name AND pid <> pg_backend_pid()"
                    ),
                    {"name": name},
                )

        def restore() -> None:
            with admin.connect() as conn:
                conn.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true'))

        back.append(admin.dispose)

    def take_away() -> None:
        away()
        timer = threading.Timer(OUTAGE_SECONDS, restore)
        timers.append(timer)
        timer.start()

    try:
        yield take_away
    finally:
        for timer in timers:
            timer.cancel()
        restore()
        for step in back:
            step()


def _statuses(db: Database) -> dict[str, int]:
    with db.transaction() as repos:
        return repos.outbox.counts_by_status()


def _run_until_sent(d: Dispatcher, db: Database, expected: int, timeout: float = 60) -> None:
    async def main() -> None:
        stop = asyncio.Event()

        async def watch() -> None:
            while True:
                with contextlib.suppress(Exception):  # the database is away: look again
                    if await asyncio.to_thread(_statuses, db) == {"sent": expected}:
                        break
                await asyncio.sleep(0.05)
            stop.set()

        watcher = asyncio.create_task(watch())
        try:
            await asyncio.wait_for(d.run(stop), timeout)
        finally:
            watcher.cancel()

    asyncio.run(main())


@pytest.fixture
def quick_db(db: Database, settings: Settings) -> Iterator[Database]:
    """The test's database with a short SQLite busy timeout, so that a held lock fails fast."""
    quick = Database(make_engine(settings.model_copy(update={"sqlite_busy_timeout_ms": 200})))
    try:
        yield quick
    finally:
        quick.dispose()


def test_outcomes_wait_for_the_database_and_every_text_goes_out_once(
    db: Database, quick_db: Database, clock: FrozenClock, caplog: pytest.LogCaptureFixture
) -> None:
    make_agency(db, clock)
    ids = [queue_sms(db, AGENCY, "52903991", f"text {n}", clock) for n in range(TEXTS)]
    caplog.set_level(logging.INFO, logger="patronlink")
    with database_away(quick_db) as take_away:
        gone: list[bool] = []

        def reply(message: OutgoingSms) -> SendResult:
            if not gone:  # the first send takes the database away: its outcome cannot be written
                gone.append(True)
                take_away()
            return SendResult(gateway_message_id=message.text, code="0")

        gateway = ScriptedGateway(default=reply, delay=0.01)
        health = Loop("dispatcher", logging.getLogger("patronlink.test"), Backoff(cap=0.5), None)
        d = Dispatcher(
            quick_db,
            clock,
            gateway.factory,
            settings=DispatchSettings(max_in_flight=8, poll_seconds=0.05),
            health=health,
        )
        _run_until_sent(d, quick_db, TEXTS)

    assert gone, "the outage never happened"
    sent = sorted(m.text for m in gateway.sent)
    assert sent == sorted(f"text {n}" for n in range(TEXTS)), "a text went out twice or never"
    assert _statuses(db) == {"sent": TEXTS}
    with db.transaction() as repos:
        attempts = [len(repos.outbox.attempts(i)) for i in ids]
    assert attempts == [1] * TEXTS
    # One error line per episode, however many failures it had; each episode ends with one
    # recovery line. (On PostgreSQL a connection being opened as the backends were cut may
    # survive them: the database answered once, and the next failure is a new episode.)
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    recoveries = [r for r in caplog.records if "recovered after" in r.getMessage()]
    assert 1 <= len(errors) == len(recoveries) <= 2, [r.getMessage() for r in caplog.records]
    assert sum(int(getattr(r, "failures", 0)) for r in recoveries) > len(errors)


def test_a_dispatcher_that_must_end_gives_back_the_texts_it_did_not_send(
    db: Database, clock: FrozenClock
) -> None:
    make_agency(db, clock)
    ids = [queue_sms(db, AGENCY, "52903991", f"text {n}", clock) for n in range(5)]

    def broken_driver(config: GatewayConfig) -> ScriptedGateway:
        raise RuntimeError("a bug in building the driver")

    d = Dispatcher(db, clock, broken_driver, settings=DispatchSettings(poll_seconds=0.05))
    with pytest.raises(RuntimeError, match="a bug in building the driver"):
        asyncio.run(d.run(asyncio.Event()))

    with db.transaction() as repos:
        rows = [repos.outbox.get(i) for i in ids]
    assert [r["status"] for r in rows if r] == ["queued"] * 5
    assert [r["attempts"] for r in rows if r] == [0] * 5
    assert [r["lease_owner"] for r in rows if r] == [None] * 5
