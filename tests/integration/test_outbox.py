"""Queueing, dispatching, retries, the error queue and staff actions on real databases."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest
from sqlalchemy import func, select

from patronlink.domain.agency import Agency
from patronlink.domain.errors import (
    Conflict,
    InvalidPhoneNumber,
    PermanentGatewayError,
    TemporaryGatewayError,
    ValidationError,
)
from patronlink.domain.outbox import MessageStatus, RetryPolicy
from patronlink.gateways.base import SendResult
from patronlink.services.configure import agency_settings
from patronlink.services.outbox import message_detail, move_messages, move_one, queue_sms
from patronlink.storage import tables
from patronlink.storage.database import Database
from patronlink.storage.outbox import MessageFilter
from patronlink.worker.dispatcher import Dispatcher, DispatchSettings
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
        settings = repos.agencies.settings(AGENCY)
        settings["sms"] = {
            **settings["sms"],
            "driver": "xml",
            "url": "http://127.0.0.1:9/",
            "username": "u",
            "password": "p",
        }
        repos.agencies.upsert(repos.agencies.get(AGENCY), settings, clock())  # type: ignore[arg-type]
    at = dt.datetime(2026, 11, 29, 8, 0, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    message_id = queue_sms(db, AGENCY, "52903991", "Husk din bog", clock, send_at=at)
    gateway = ScriptedGateway()
    run_once(dispatcher(db, clock, gateway))
    assert status_of(db, message_id) == "sent"
    assert gateway.sent[0].send_at == at.astimezone(dt.UTC)
    assert gateway.configs[0].password == "p"


def test_missing_gateway_secret_puts_text_on_error_queue(db: Database, clock: FrozenClock) -> None:
    make_agency(db, clock)
    with db.transaction() as repos:
        settings = repos.agencies.settings(AGENCY)
        settings["sms"] = {
            **settings["sms"],
            "driver": "xml",
            "url": "http://127.0.0.1:9/",
            "username": "u",
            "password": "${PATRONLINK_TEST_UNSET_SECRET}",
        }
        repos.agencies.upsert(repos.agencies.get(AGENCY), settings, clock())  # type: ignore[arg-type]
    message_id = queue_sms(db, AGENCY, "52903991", "hej", clock)
    run_once(dispatcher(db, clock, ScriptedGateway()))
    detail = message_detail(db, message_id, None).message
    assert detail["status"] == "error"
    assert "PATRONLINK_TEST_UNSET_SECRET is not set" in detail["last_description"]


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
    """A crash repeats every text claimed and not yet recorded: never more than max_in_flight."""
    make_agency(db, clock, concurrency=64)
    for i in range(40):
        queue_sms(db, AGENCY, "52903991", f"t{i}", clock)
    held: list[int] = []

    def count_held(_message: object) -> SendResult:
        with db.engine.connect() as conn:
            sending = select(func.count()).where(tables.messages.c.status == "sending")
            held.append(conn.execute(sending).scalar_one())
        return SendResult(gateway_message_id="ok", code="0")

    # Outcomes written rarely pile up unrecorded while sends finish at once.
    d = dispatcher(
        db, clock, ScriptedGateway(count_held), batch_size=4, max_in_flight=8, flush_seconds=60
    )
    run_once(d)
    assert len(held) == 40
    assert max(held) <= 8
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
