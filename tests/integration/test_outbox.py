"""Queueing, dispatching, retries, the error queue and staff actions on real databases."""

from __future__ import annotations

import asyncio
import datetime as dt
import sqlite3
import threading

import psycopg
import pytest
from sqlalchemy import func, select

from patronlink.config.schema import AgencySettings
from patronlink.domain.agency import Agency
from patronlink.domain.dispatch import DispatchSettings, Outcome
from patronlink.domain.errors import (
    Conflict,
    InvalidPhoneNumber,
    PermanentGatewayError,
    TemporaryGatewayError,
    ValidationError,
)
from patronlink.domain.outbox import MessageStatus, RetryPolicy
from patronlink.gateways.base import SendResult
from patronlink.services.alerts import MIN_FAILED_ATTEMPTS, current_alerts
from patronlink.services.configure import agency_settings
from patronlink.services.outbox import message_detail, move_messages, move_one, queue_sms
from patronlink.storage import tables
from patronlink.storage.database import Database
from patronlink.storage.outbox import MessageFilter
from patronlink.worker.dispatcher import Dispatcher
from tests.conftest import FrozenClock
from tests.support.fake_gateway import ScriptedGateway

AGENCY = "DK-761500"


def make_agency(db: Database, clock: FrozenClock, **sms: object) -> None:
    from patronlink.config.schema import AgencyConfig

    config = AgencyConfig.model_validate(
        {"id": AGENCY, "name": "Horsens", "sms": {"driver": "console", **sms}}
    )
    with db.transaction() as repos:
        repos.agencies.upsert(Agency(id=AGENCY, name="Horsens"), agency_settings(config), clock())


def dispatcher(
    db: Database, clock: FrozenClock, gateway: ScriptedGateway, **kw: object
) -> Dispatcher:
    settings = DispatchSettings(retry=RetryPolicy(base_seconds=60, cap_seconds=600), **kw)  # type: ignore[arg-type]
    return Dispatcher(db, clock, gateway.factory, settings=settings, rng=lambda: 0.0)


def run_once(d: Dispatcher) -> None:
    asyncio.run(d.run(once=True))


def status_of(db: Database, message_id: int) -> str:
    with db.transaction() as repos:
        row = repos.outbox.get(message_id)
    assert row is not None
    return str(row["status"])


def test_queue_normalises_number_and_counts_segments(db: Database, clock: FrozenClock) -> None:
    make_agency(db, clock)
    message_id = queue_sms(db, AGENCY, "52 90 39 91", "Lån fornyet – Æblet Ørn Åen", clock)
    detail = message_detail(db, message_id, AGENCY)
    assert detail.message["to_number"] == "+4552903991"
    assert detail.message["encoding"] == "UCS-2"  # the en dash is not in GSM-7
    assert detail.message["segments"] == 1
    assert detail.message["status"] == "queued"
    assert (
        message_detail(db, queue_sms(db, AGENCY, "52903991", "x" * 161, clock), None).message[
            "segments"
        ]
        == 2
    )


@pytest.mark.parametrize(
    ("to", "text", "error"),
    [
        ("abc", "hej", InvalidPhoneNumber),
        ("52903991", "   ", ValidationError),
        ("52903991", "x" * 1601, ValidationError),
        ("52903991", "nul\x00byte", ValidationError),
    ],
)
def test_queue_refuses_bad_input_and_writes_nothing(
    db: Database, clock: FrozenClock, to: str, text: str, error: type[Exception]
) -> None:
    make_agency(db, clock)
    with pytest.raises(error):
        queue_sms(db, AGENCY, to, text, clock)
    with db.engine.connect() as conn:
        assert conn.execute(select(tables.messages)).first() is None


def test_sent_buffered_temporary_permanent(db: Database, clock: FrozenClock) -> None:
    make_agency(db, clock, max_attempts=2)
    gateway = ScriptedGateway()
    gateway.script.extend(
        [
            SendResult(
                gateway_message_id="m1", http_status=200, code="0", description="SMS afsendt."
            ),
            SendResult(gateway_message_id=None, buffered=True, code="1042", description="Buffered"),
            TemporaryGatewayError(
                "Provider temporarily unavailable.", http_status=200, code="1029"
            ),
            PermanentGatewayError("Invalid phone number specified.", http_status=200, code="1002"),
        ]
    )
    ids = [queue_sms(db, AGENCY, "52903991", f"text {i}", clock) for i in range(4)]
    run_once(dispatcher(db, clock, gateway))
    assert [status_of(db, i) for i in ids] == ["sent", "sent", "queued", "error"]
    buffered = message_detail(db, ids[1], AGENCY)
    assert buffered.message["buffered"] is True
    assert buffered.attempts[0]["outcome"] == "buffered"
    failed = message_detail(db, ids[3], AGENCY)
    assert (failed.message["last_code"], failed.message["last_description"]) == (
        "1002",
        "Invalid phone number specified.",
    )
    # The temporary failure waits for its backoff (30 s with rng 0 and base 60) ...
    run_once(dispatcher(db, clock, gateway))
    assert status_of(db, ids[2]) == "queued"
    clock.advance(seconds=31)
    gateway.script.append(TemporaryGatewayError("Provider temporarily unavailable.", code="1029"))
    run_once(dispatcher(db, clock, gateway))
    # ... and its second failure was the last of max_attempts = 2: the error queue.
    retried = message_detail(db, ids[2], AGENCY)
    assert retried.message["status"] == "error"
    assert [a["outcome"] for a in retried.attempts] == ["temporary", "temporary"]
    assert len(gateway.sent) == 5  # nothing sent twice, the buffered one included


def test_staff_retry_and_cancel(db: Database, clock: FrozenClock) -> None:
    make_agency(db, clock)
    gateway = ScriptedGateway(default=PermanentGatewayError("Access denied", code="101101"))
    ids = [queue_sms(db, AGENCY, "52903991", f"t{i}", clock) for i in range(3)]
    run_once(dispatcher(db, clock, gateway))
    assert {status_of(db, i) for i in ids} == {"error"}
    move_one(db, ids[0], AGENCY, MessageStatus.QUEUED, clock)
    move_one(db, ids[1], AGENCY, MessageStatus.CANCELLED, clock)
    with pytest.raises(Conflict):
        move_one(db, ids[1], AGENCY, MessageStatus.QUEUED, clock)
    gateway.default = SendResult(gateway_message_id="ok")
    run_once(dispatcher(db, clock, gateway))
    assert [status_of(db, i) for i in ids] == ["sent", "cancelled", "error"]
    with pytest.raises(Conflict):
        move_one(db, ids[0], AGENCY, MessageStatus.CANCELLED, clock)
    moved = move_messages(
        db,
        MessageFilter(agency_id=AGENCY, statuses=(MessageStatus.ERROR,), code="101101"),
        MessageStatus.QUEUED,
        clock,
    )
    assert moved == [ids[2]]
    assert message_detail(db, ids[2], None).message["attempts"] == 0


def test_quiet_hours_hold_texts_for_a_gateway_that_cannot_schedule(
    db: Database, clock: FrozenClock
) -> None:
    make_agency(
        db,
        clock,
        quiet_hours="21:00-08:00",
        driver="kannel",
        url="http://127.0.0.1:9/",
        username="u",
        password="p",
    )
    clock.now = dt.datetime(2026, 11, 23, 21, 30, tzinfo=dt.UTC)  # 22:30 in Copenhagen
    message_id = queue_sms(db, AGENCY, "52903991", "hej", clock)
    gateway = ScriptedGateway()
    run_once(dispatcher(db, clock, gateway))
    assert gateway.sent == []
    detail = message_detail(db, message_id, None).message
    assert detail["send_at"] == dt.datetime(2026, 11, 24, 7, 0, tzinfo=dt.UTC)  # 08:00 local
    clock.now = dt.datetime(2026, 11, 24, 7, 0, tzinfo=dt.UTC)
    run_once(dispatcher(db, clock, gateway))
    assert status_of(db, message_id) == "sent"
    assert gateway.sent[0].send_at is None


def test_quiet_hours_hand_a_scheduling_gateway_the_morning_time(
    db: Database, clock: FrozenClock
) -> None:
    make_agency(
        db,
        clock,
        quiet_hours="21:00-08:00",
        driver="xml",
        url="http://127.0.0.1:9/",
        username="u",
        password="p",
    )
    clock.now = dt.datetime(2026, 11, 23, 21, 30, tzinfo=dt.UTC)
    message_id = queue_sms(db, AGENCY, "52903991", "hej", clock)
    gateway = ScriptedGateway()
    run_once(dispatcher(db, clock, gateway))
    assert status_of(db, message_id) == "sent"
    assert gateway.sent[0].send_at == dt.datetime(2026, 11, 24, 7, 0, tzinfo=dt.UTC)


def test_scheduling_gateway_gets_the_text_at_once_with_its_time(
    db: Database, clock: FrozenClock
) -> None:
    make_agency(db, clock)
    with db.transaction() as repos:
        settings = repos.agencies.settings(AGENCY).stored()
        settings["sms"] = {
            **settings["sms"],
            "driver": "xml",
            "url": "http://127.0.0.1:9/",
            "username": "u",
            "password": "p",
        }
        repos.agencies.upsert(
            repos.agencies.get(AGENCY),  # type: ignore[arg-type]
            AgencySettings.model_validate(settings),
            clock(),
        )
    at = dt.datetime(2026, 11, 29, 8, 0, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    message_id = queue_sms(db, AGENCY, "52903991", "Husk din bog", clock, send_at=at)
    gateway = ScriptedGateway()
    run_once(dispatcher(db, clock, gateway))
    assert status_of(db, message_id) == "sent"
    assert gateway.sent[0].send_at == at.astimezone(dt.UTC)
    assert gateway.configs[0].password == "p"


def test_missing_gateway_secret_holds_text_as_queued(db: Database, clock: FrozenClock) -> None:
    # Issue 18: the fault is the worker's environment, not the text; it waits, it is not failed.
    make_agency(db, clock)
    with db.transaction() as repos:
        settings = repos.agencies.settings(AGENCY).stored()
        settings["sms"] = {
            **settings["sms"],
            "driver": "xml",
            "url": "http://127.0.0.1:9/",
            "username": "u",
            "password": "${PATRONLINK_TEST_UNSET_SECRET}",
        }
        repos.agencies.upsert(
            repos.agencies.get(AGENCY),  # type: ignore[arg-type]
            AgencySettings.model_validate(settings),
            clock(),
        )
    message_id = queue_sms(db, AGENCY, "52903991", "hej", clock)
    run_once(dispatcher(db, clock, ScriptedGateway()))
    detail = message_detail(db, message_id, None).message
    assert detail["status"] == "queued"
    assert "PATRONLINK_TEST_UNSET_SECRET" in detail["last_description"]
    assert detail["next_attempt_at"] > clock()


def test_a_hold_uses_no_attempt_and_is_no_gateway_failure(db: Database, clock: FrozenClock) -> None:
    """Issue 18: a text held N times for a missing secret keeps all its attempts for the
    gateway once the secret is set, and the holds raise no failing-gateway alert."""
    make_agency(
        db,
        clock,
        driver="xml",
        url="http://127.0.0.1:9/",
        username="u",
        password="${PATRONLINK_TEST_HELD_SECRET}",
        max_attempts=2,
    )
    message_id = queue_sms(db, AGENCY, "52903991", "hej", clock)
    gateway = ScriptedGateway()
    # Held more often than the text has attempts, within the alert's window.
    for _ in range(4):
        d = Dispatcher(db, clock, gateway.factory, environ={}, rng=lambda: 0.0)
        asyncio.run(d.run(once=True))
        detail = message_detail(db, message_id, None)
        assert detail.message["status"] == "queued"
        assert detail.message["attempts"] == 0
        assert detail.attempts[-1]["outcome"] == "held"
        assert "PATRONLINK_TEST_HELD_SECRET" in detail.attempts[-1]["description"]
        clock.advance(minutes=5)
    assert gateway.sent == []
    assert len(message_detail(db, message_id, None).attempts) == 4
    assert current_alerts(db, AGENCY, clock()).gateways == []
    # Held for longer than the maximum age of a text never tried: not found stale either.
    clock.advance(hours=25)

    # The secret is set: the first attempt fails for a while, the second (its last) goes out.
    gateway.script.append(TemporaryGatewayError("Provider temporarily unavailable.", code="1029"))
    environ = {"PATRONLINK_TEST_HELD_SECRET": "p"}
    asyncio.run(
        Dispatcher(db, clock, gateway.factory, environ=environ, rng=lambda: 0.0).run(once=True)
    )
    assert status_of(db, message_id) == "queued"
    clock.advance(minutes=5)
    asyncio.run(
        Dispatcher(db, clock, gateway.factory, environ=environ, rng=lambda: 0.0).run(once=True)
    )
    detail = message_detail(db, message_id, None)
    assert detail.message["status"] == "sent"
    assert detail.message["attempts"] == 2
    assert [a["outcome"] for a in detail.attempts] == ["held"] * 4 + ["temporary", "sent"]
    assert gateway.configs[-1].password == "p"


def test_gateway_failures_still_raise_the_alert_beside_holds(
    db: Database, clock: FrozenClock
) -> None:
    """Holds are left out of the alert's count, gateway failures are not."""
    make_agency(db, clock, max_attempts=9)
    for i in range(MIN_FAILED_ATTEMPTS):
        queue_sms(db, AGENCY, "52903991", f"t{i}", clock)
    gateway = ScriptedGateway(TemporaryGatewayError("Provider temporarily unavailable."))
    run_once(dispatcher(db, clock, gateway))
    [alert] = current_alerts(db, AGENCY, clock()).gateways
    assert alert.failed_attempts == MIN_FAILED_ATTEMPTS


def test_concurrency_is_bounded_per_gateway(db: Database, clock: FrozenClock) -> None:
    make_agency(db, clock, concurrency=3)
    for i in range(30):
        queue_sms(db, AGENCY, "52903991", f"t{i}", clock)
    gateway = ScriptedGateway(delay=0.01)
    run_once(dispatcher(db, clock, gateway, batch_size=10, max_in_flight=20))
    assert len(gateway.sent) == 30
    assert gateway.max_in_flight == 3


def test_sent_but_unrecorded_texts_count_against_max_in_flight(
    db: Database, clock: FrozenClock
) -> None:
    """A crash repeats every text sent and not yet recorded: never more than max_in_flight.
    Texts claimed and not yet sent stay within one claim batch on top of that."""
    make_agency(db, clock, concurrency=64)
    for i in range(40):
        queue_sms(db, AGENCY, "52903991", f"t{i}", clock)
    unrecorded: list[int] = []
    claimed: list[int] = []

    def count_held(_message: object) -> SendResult:
        with db.engine.connect() as conn:
            by_status = dict(
                conn.execute(
                    select(tables.messages.c.status, func.count()).group_by(
                        tables.messages.c.status
                    )
                ).all()
            )
        # Sent so far, this one included, less those whose outcome is committed.
        unrecorded.append(len(unrecorded) + 1 - by_status.get("sent", 0))
        claimed.append(by_status.get("sending", 0))
        return SendResult(gateway_message_id="ok", code="0")

    # Outcomes written rarely pile up unrecorded while sends finish at once.
    d = dispatcher(
        db, clock, ScriptedGateway(count_held), batch_size=4, max_in_flight=8, flush_seconds=60
    )
    run_once(d)
    assert len(unrecorded) == 40
    assert max(unrecorded) <= 8
    assert max(claimed) <= 8 + 4
    with db.transaction() as repos:
        assert repos.outbox.counts_by_status(AGENCY) == {"sent": 40}


def test_expired_lease_is_claimed_again(db: Database, clock: FrozenClock) -> None:
    make_agency(db, clock)
    message_id = queue_sms(db, AGENCY, "52903991", "hej", clock)
    with db.transaction() as repos:  # a worker that claimed it and died
        claimed = repos.outbox.claim(clock(), clock() + dt.timedelta(seconds=60), "dead", 10)
    assert [m.id for m in claimed] == [message_id]
    gateway = ScriptedGateway()
    run_once(dispatcher(db, clock, gateway))
    assert gateway.sent == []  # the lease still holds
    clock.advance(seconds=61)
    run_once(dispatcher(db, clock, gateway))
    assert status_of(db, message_id) == "sent"
    assert message_detail(db, message_id, None).message["attempts"] == 2


def _claim_as(db: Database, clock: FrozenClock, owner: str, limit: int) -> list[int]:
    with db.transaction() as repos:
        lease = clock() + dt.timedelta(minutes=5)
        return [m.id for m in repos.outbox.claim(clock(), lease, owner, limit)]


def _outcome(message_id: int, clock: FrozenClock, **kw: object) -> Outcome:
    values: dict[str, object] = {
        "message_id": message_id,
        "status": MessageStatus.SENT,
        "started_at": clock() - dt.timedelta(seconds=1),
        "finished_at": clock(),
        "driver": "xml",
        "attempt_outcome": "sent",
        "http_status": 200,
        "code": "0",
        "description": "SMS afsendt.",
        "gateway_message_id": f"g{message_id}",
        **kw,
    }
    return Outcome(**values)  # type: ignore[arg-type]


def test_outcome_batch_writes_only_the_messages_this_worker_holds(
    db: Database, clock: FrozenClock
) -> None:
    """One batch: a sent text, a retry, a lease taken over by another worker, a text no longer
    sending. Only the first two move; every attempt is logged; the next batch (on PostgreSQL
    through the same session's batch table) applies only its own rows."""
    make_agency(db, clock)
    ids = [queue_sms(db, AGENCY, "52903991", f"t{i}", clock) for i in range(4)]
    assert _claim_as(db, clock, "me", 3) == ids[:3]
    assert _claim_as(db, clock, "other", 3) == ids[3:]
    with db.engine.begin() as conn:  # e.g. recorded by hand meanwhile: not 'sending' any more
        conn.execute(
            tables.messages.update()
            .where(tables.messages.c.id == ids[2])
            .values(status="cancelled")
        )
    retry_at = clock() + dt.timedelta(minutes=2)
    batch = [
        _outcome(ids[0], clock),
        _outcome(
            ids[1],
            clock,
            status=MessageStatus.QUEUED,
            attempt_outcome="temporary",
            next_attempt_at=retry_at,
            http_status=503,
            code=None,
            description="xml: HTTP 503",
            gateway_message_id=None,
        ),
        _outcome(ids[2], clock),
        _outcome(ids[3], clock),
    ]
    with db.transaction() as repos:
        assert repos.outbox.record(batch, "me") == 2
    rows = {i: message_detail(db, i, None) for i in ids}
    sent = rows[ids[0]].message
    assert (sent["status"], sent["gateway_message_id"], sent["last_code"]) == (
        "sent",
        f"g{ids[0]}",
        "0",
    )
    assert sent["sent_at"] == clock()
    assert sent["lease_owner"] is None
    retry = rows[ids[1]].message
    assert (retry["status"], retry["next_attempt_at"], retry["sent_at"]) == (
        "queued",
        retry_at,
        None,
    )
    assert (retry["last_http_status"], retry["last_description"]) == (503, "xml: HTTP 503")
    assert rows[ids[2]].message["status"] == "cancelled"
    assert (rows[ids[3]].message["status"], rows[ids[3]].message["lease_owner"]) == (
        "sending",
        "other",
    )
    assert [len(rows[i].attempts) for i in ids] == [1, 1, 1, 1]
    assert rows[ids[1]].attempts[0]["outcome"] == "temporary"
    assert {a["worker"] for i in ids for a in rows[i].attempts} == {"me"}

    with db.transaction() as repos:
        assert repos.outbox.record([_outcome(ids[3], clock)], "other") == 1
    assert [len(message_detail(db, i, None).attempts) for i in ids] == [1, 1, 1, 2]
    assert status_of(db, ids[3]) == "sent"


def test_outcome_batch_that_fails_writes_nothing_and_the_next_one_works(
    db: Database, clock: FrozenClock
) -> None:
    make_agency(db, clock)
    ids = [queue_sms(db, AGENCY, "52903991", f"t{i}", clock) for i in range(2)]
    assert _claim_as(db, clock, "me", 2) == ids
    # The driver's own error: the batch goes below SQLAlchemy.
    with (
        pytest.raises((sqlite3.IntegrityError, psycopg.IntegrityError)),
        db.transaction() as repos,
    ):
        # No such message: its attempt cannot be logged, and the whole batch is refused.
        repos.outbox.record([_outcome(ids[0], clock), _outcome(10_000, clock)], "me")
    assert [status_of(db, i) for i in ids] == ["sending", "sending"]
    assert message_detail(db, ids[0], None).attempts == []
    with db.transaction() as repos:
        assert repos.outbox.record([_outcome(i, clock) for i in ids], "me") == 2
    assert [status_of(db, i) for i in ids] == ["sent", "sent"]
    assert [len(message_detail(db, i, None).attempts) for i in ids] == [1, 1]


def test_a_failure_outside_the_driver_leaves_that_text_leased_and_the_rest_go(
    db: Database, clock: FrozenClock
) -> None:
    """An unexpected error after a send (here in the metrics) must not stop the sender nor
    keep its permit: with one permit, every later text would wait forever."""
    make_agency(db, clock, concurrency=2)
    ids = [queue_sms(db, AGENCY, "52903991", f"t{i}", clock) for i in range(5)]
    observed: list[int] = []

    class FailingOnce:
        def observe(self, agency_id: str, outcome: Outcome, seconds: float) -> None:
            observed.append(outcome.message_id)
            if len(observed) == 2:
                raise RuntimeError("metrics backend broke")

        def gateway_streak(self, agency_id: str, driver: str, failures: int) -> None:
            pass

    gateway = ScriptedGateway()
    settings = DispatchSettings(max_in_flight=1)
    d = Dispatcher(db, clock, gateway.factory, settings=settings, metrics=FailingOnce())  # type: ignore[arg-type]
    # A permit kept by the failed text would leave the rest waiting for ever: run it aside.
    runner = threading.Thread(target=run_once, args=(d,), daemon=True)
    runner.start()
    runner.join(timeout=30)
    assert not runner.is_alive(), "the dispatcher stalled after the failure"
    assert len(gateway.sent) == 5
    statuses = [status_of(db, i) for i in ids]
    assert statuses.count("sent") == 4
    assert statuses[ids.index(observed[1])] == "sending"  # its lease expires; it goes again
    clock.advance(seconds=settings.lease_seconds + 1)
    run_once(dispatcher(db, clock, gateway))
    assert [status_of(db, i) for i in ids] == ["sent"] * 5


def test_a_hostile_reply_is_stored_as_its_columns_allow(db: Database, clock: FrozenClock) -> None:
    """A gateway answering an overlong message id, code or text, or a NUL, must not fail the
    outcome batch: PostgreSQL refuses both, and the whole batch would be lost and sent again."""
    make_agency(db, clock)
    ok_id = queue_sms(db, AGENCY, "52903991", "ok", clock)
    hostile_id = queue_sms(db, AGENCY, "52903991", "hostile", clock)
    gateway = ScriptedGateway()
    gateway.script.extend(
        [
            SendResult(gateway_message_id="g1", code="0"),
            SendResult(gateway_message_id="m" * 300, code="9" * 40, description="a\x00b" * 900),
        ]
    )
    run_once(dispatcher(db, clock, gateway))
    assert [status_of(db, i) for i in (ok_id, hostile_id)] == ["sent", "sent"]
    stored = message_detail(db, hostile_id, None)
    assert stored.message["gateway_message_id"] == "m" * 128
    assert stored.message["last_code"] == "9" * 32
    assert stored.message["last_description"] == ("ab" * 900)[:2000]
    assert stored.attempts[0]["description"] == ("ab" * 900)[:2000]


def test_a_number_spoilt_in_the_database_goes_to_the_error_queue(
    db: Database, clock: FrozenClock
) -> None:
    make_agency(db, clock)
    good = queue_sms(db, AGENCY, "52903991", "ok", clock)
    spoilt = queue_sms(db, AGENCY, "52903992", "spoilt", clock)
    with db.engine.begin() as conn:  # by hand, past the checks of queueing
        conn.execute(
            tables.messages.update()
            .where(tables.messages.c.id == spoilt)
            .values(to_number="52903992")
        )
    gateway = ScriptedGateway()
    run_once(dispatcher(db, clock, gateway))
    assert [m.to for m in gateway.sent] == ["+4552903991"]
    assert [status_of(db, i) for i in (good, spoilt)] == ["sent", "error"]
    detail = message_detail(db, spoilt, None)
    assert "is not an E.164 number" in detail.message["last_description"]
    assert [a["outcome"] for a in detail.attempts] == ["permanent"]
