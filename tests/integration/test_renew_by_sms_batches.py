"""Renewal by SMS in batches: callbacks that queue up share one transaction, and each still gets
exactly the outcome it would have had alone (SQLite and PostgreSQL)."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import text

from patronlink.domain.errors import Unauthenticated
from patronlink.services.renew_by_sms import (
    InboundRequest,
    InboundResult,
    receive_inbound_batch,
)
from patronlink.services.secrets import VerifiedPasswords
from patronlink.settings import Settings
from patronlink.storage.database import Database
from patronlink.web.app import create_app
from tests.conftest import FrozenClock
from tests.integration.test_renew_by_sms import (
    AGENCY,
    PASSWORD,
    Server,
    callback_params,
    setup_library,
)
from tests.support.live_server import live_server

KAREN = "52903991"  # shares her number with her son; both have loans
METTE = "20112233"  # a patron without loans


def inbound(
    text: str, number: str = KAREN, *, agency: str = AGENCY, **overrides: str
) -> InboundRequest:
    return InboundRequest(agency=agency, **callback_params(text, number, **overrides))


@pytest.fixture
def library(db: Database, clock: FrozenClock) -> Server:
    setup_library(db, clock)
    return Server("", db, clock)


@pytest.fixture
def boom(db: Database) -> Iterator[str]:
    """A real database failure for one text: inserting its log row raises."""
    text_ = "boom forny alle"
    with db.engine.begin() as conn:
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql(
                "CREATE TRIGGER boom BEFORE INSERT ON inbound_sms "
                f"WHEN NEW.text = '{text_}' BEGIN SELECT RAISE(ABORT, 'boom'); END"
            )
        else:
            conn.exec_driver_sql(
                "CREATE FUNCTION boom() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                f"IF NEW.text = '{text_}' THEN RAISE EXCEPTION 'boom'; END IF; "
                "RETURN NEW; END $$"
            )
            conn.exec_driver_sql(
                "CREATE TRIGGER boom BEFORE INSERT ON inbound_sms "
                "FOR EACH ROW EXECUTE FUNCTION boom()"
            )
    try:
        yield text_
    finally:
        with db.engine.begin() as conn:
            if conn.dialect.name == "sqlite":
                conn.exec_driver_sql("DROP TRIGGER IF EXISTS boom")
            else:
                conn.execute(text("DROP TRIGGER IF EXISTS boom ON inbound_sms"))
                conn.execute(text("DROP FUNCTION IF EXISTS boom()"))


def test_one_batch_gives_each_request_its_own_outcome(
    library: Server, db: Database, clock: FrozenClock
) -> None:
    passwords = VerifiedPasswords()
    # The first time the password is checked by argon2, outside the batch's transaction.
    [first] = receive_inbound_batch(db, [inbound("x forny alle", METTE)], passwords, clock)
    assert isinstance(first, InboundResult)
    assert first.outcome == "no_loans"
    batch = [
        inbound("Horsens forny alle"),
        inbound("Horsens forny alle"),  # a provider's retry, in the same batch
        inbound("aah forny alle", "99887766"),  # nobody's number
        inbound("y forny alle", METTE),
        inbound("z forny alle", password="wrong-password"),
        inbound("z forny alle", agency="DK-000000"),
    ]
    results = receive_inbound_batch(db, batch, passwords, clock)
    outcomes = [r.outcome if isinstance(r, InboundResult) else type(r) for r in results]
    assert sorted(outcomes[:2], key=str) == ["duplicate", "renewed"]  # once, whichever first
    # An unknown agency is refused as a wrong password is (issue 13: no agency enumeration).
    assert outcomes[2:] == ["unknown_number", "no_loans", Unauthenticated, Unauthenticated]
    assert library.due_dates()["12345678"][1] == 1  # renewed once, not twice
    assert Counter(r["outcome"] for r in library.log()) == {
        "no_loans": 2,
        "renewed": 1,
        "duplicate": 1,
        "unknown_number": 1,
    }
    assert len(library.replies()) == 2 + 2  # Mette twice; Karen and her son once each


def test_a_failing_request_fails_alone(
    library: Server, db: Database, clock: FrozenClock, boom: str
) -> None:
    passwords = VerifiedPasswords()
    receive_inbound_batch(db, [inbound("x forny alle", METTE)], passwords, clock)  # argon2 once
    results = receive_inbound_batch(
        db,
        [inbound("Horsens forny alle"), inbound(boom, METTE), inbound("y forny alle", METTE)],
        passwords,
        clock,
    )
    assert isinstance(results[0], InboundResult)
    assert results[0].outcome == "renewed"
    assert isinstance(results[1], Exception)
    assert "boom" in str(results[1])
    assert isinstance(results[2], InboundResult)
    assert results[2].outcome == "no_loans"
    # The batch was rolled back and its requests handled one by one: each done exactly once,
    # nothing of the failed one written.
    assert library.due_dates()["12345678"][1] == 1
    assert [r["text"] for r in library.log()] == [
        "x forny alle",
        "Horsens forny alle",
        "y forny alle",
    ]
    assert len(library.replies()) == 1 + 2 + 1


def test_concurrent_callbacks_over_http(
    db: Database, settings: Settings, clock: FrozenClock, boom: str
) -> None:
    setup_library(db, clock)
    calls = (
        [("Horsens forny alle", KAREN, PASSWORD)] * 6
        + [(f"m{i} forny alle", METTE, PASSWORD) for i in range(6)]
        + [(f"u{i} forny alle", f"4000000{i}", PASSWORD) for i in range(6)]
        + [("w forny alle", KAREN, "wrong-password")] * 2
        + [(boom, METTE, PASSWORD)]
    )
    start = threading.Barrier(len(calls))
    with live_server(create_app(settings, db, clock)) as url:
        server = Server(url, db, clock)
        assert server.call("warm forny alle", METTE).status_code == 200  # argon2 once

        def call(args: tuple[str, str, str]) -> int:
            text_, number, password = args
            start.wait()
            return server.call(text_, number, password=password).status_code

        with ThreadPoolExecutor(len(calls)) as pool:
            statuses = list(pool.map(call, calls))
    assert statuses == [200] * 18 + [401, 401] + [500]
    log = server.log()
    assert Counter(r["outcome"] for r in log) == {
        "renewed": 1,
        "duplicate": 5,
        "no_loans": 1 + 6,
        "unknown_number": 6,
    }
    assert boom not in {r["text"] for r in log}
    assert server.due_dates()["12345678"][1] == 1
    assert len(server.replies()) == 1 + 2 + 6
