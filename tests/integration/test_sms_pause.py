"""Paused sending, starting paused after a restore, and texts too old to send (issue 14, item 5)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from patronlink.cli import main
from patronlink.config.schema import AgencySettings
from patronlink.domain.agency import Agency
from patronlink.domain.dispatch import DispatchSettings
from patronlink.domain.errors import TemporaryGatewayError
from patronlink.domain.outbox import MessageStatus
from patronlink.services.demo import load_demo
from patronlink.services.outbox import move_one, queue_sms
from patronlink.services.sms_pause import pause_sending, pauses, resume_sending
from patronlink.settings import Settings
from patronlink.storage.database import Database
from patronlink.web.app import create_app
from patronlink.worker.dispatcher import Dispatcher
from tests.conftest import FrozenClock
from tests.support.fake_gateway import ScriptedGateway
from tests.support.live_server import live_server
from tests.support.staff_site import A, B, add_users, configure, log_in

DAY = 24 * 3600


def _agencies(db: Database, clock: FrozenClock) -> None:
    with db.transaction() as repos:
        for agency_id, name in ((A, "Horsens"), (B, "Aarhus")):
            repos.agencies.upsert(Agency(id=agency_id, name=name), AgencySettings(), clock())


def _dispatch(
    db: Database, clock: FrozenClock, gateway: ScriptedGateway, **settings: float
) -> None:
    dispatcher = Dispatcher(db, clock, gateway.factory, settings=DispatchSettings(**settings))
    asyncio.run(dispatcher.run(once=True))


def _status(db: Database, message_id: int) -> dict[str, object]:
    with db.transaction() as repos:
        found = repos.outbox.get(message_id)
    assert found is not None
    return found


def test_a_paused_agency_keeps_its_texts_queued_and_sends_them_on_resume(
    db: Database, clock: FrozenClock
) -> None:
    _agencies(db, clock)
    held = [queue_sms(db, A, "52903991", f"A {i}", clock) for i in range(3)]
    other = queue_sms(db, B, "52903992", "B", clock)
    change = pause_sending(db, "761500", "test", clock, reason="backup restore")
    assert (change.scope, change.changed, change.queued) == (A, True, 3)
    assert not pause_sending(db, A, "test again", clock).changed  # the first pause is kept
    gateway = ScriptedGateway()
    _dispatch(db, clock, gateway)
    assert [m.text for m in gateway.sent] == ["B"]
    assert _status(db, other)["status"] == "sent"
    for message_id in held:
        row = _status(db, message_id)
        # Held as queued: not claimed, so no lease and no attempt used.
        assert (row["status"], row["attempts"], row["lease_owner"]) == ("queued", 0, None)
    resumed = resume_sending(db, A, "test", clock)
    assert resumed.changed
    assert resumed.still_paused == ()
    _dispatch(db, clock, gateway)
    assert sorted(m.text for m in gateway.sent) == ["A 0", "A 1", "A 2", "B"]


def test_a_pause_of_every_agency_holds_every_text_and_outlives_an_agencys_resume(
    db: Database, clock: FrozenClock
) -> None:
    _agencies(db, clock)
    queue_sms(db, A, "52903991", "A", clock)
    queue_sms(db, B, "52903992", "B", clock)
    pause_sending(db, None, "test", clock)
    pause_sending(db, B, "test", clock)
    gateway = ScriptedGateway()
    _dispatch(db, clock, gateway)
    assert gateway.sent == []
    everywhere = resume_sending(db, None, "test", clock)
    assert everywhere.changed
    assert everywhere.still_paused == (B,)
    _dispatch(db, clock, gateway)
    assert [m.text for m in gateway.sent] == ["A"]
    assert not resume_sending(db, None, "test", clock).changed
    resume_sending(db, B, "test", clock)
    _dispatch(db, clock, gateway)
    assert [m.text for m in gateway.sent] == ["A", "B"]


def test_expired_leases_of_a_paused_agency_are_not_taken_again(
    db: Database, clock: FrozenClock
) -> None:
    _agencies(db, clock)
    message_id = queue_sms(db, A, "52903991", "A", clock)
    with db.transaction() as repos:  # a worker claimed it and died
        repos.outbox.claim(clock(), clock(), "dead-worker", 10)
    pause_sending(db, A, "test", clock)
    clock.advance(seconds=600)
    gateway = ScriptedGateway()
    _dispatch(db, clock, gateway)
    assert gateway.sent == []
    assert _status(db, message_id)["lease_owner"] == "dead-worker"


def test_cli_pause_and_resume(db: Database, settings: Settings, clock: FrozenClock) -> None:
    _agencies(db, clock)
    queue_sms(db, A, "52903991", "A", clock)
    url = ["--database-url", settings.database_url]
    runner = CliRunner()
    paused = runner.invoke(main, [*url, "sms", "pause", "--agency", A, "--reason", "restore"])
    assert paused.exit_code == 0, paused.output
    assert paused.output == f"sending paused for {A}; 1 text(s) held in the queue\n"
    [pause] = pauses(db)
    assert (pause.scope, pause.reason) == (A, "restore")
    assert pause.paused_by.startswith("cli:")
    everywhere = runner.invoke(main, [*url, "sms", "pause"])
    assert "sending paused for every agency" in everywhere.output
    resumed = runner.invoke(main, [*url, "sms", "resume"])
    assert resumed.exit_code == 0, resumed.output
    assert "sending resumed for every agency" in resumed.output
    assert f"still paused: {A} (resume each with --agency)" in resumed.output
    unknown = runner.invoke(main, [*url, "sms", "pause", "--agency", "DK-000000"])
    # `run()` turns the error into one line on stderr; CliRunner calls `main` below it.
    assert "agency 'DK-000000' does not exist" in str(unknown.exception)
    assert [p.scope for p in pauses(db)] == [A]


def test_a_restore_started_paused_sends_nothing_until_resumed(
    db: Database, settings: Settings, clock: FrozenClock
) -> None:
    """The restore procedure of docs/operations.md: the texts of the backup stay queued."""
    load_demo(db, clock)
    for i in range(5):
        queue_sms(db, "DK-761500", "52903991", f"from the backup {i}", clock)
    url = ["--database-url", settings.database_url]
    runner = CliRunner()
    first = runner.invoke(
        main,
        [*url, "worker", "--once"],
        env={"PATRONLINK_START_PAUSED": "true", "PATRONLINK_DISPATCH_MAX_AGE_SECONDS": "0"},
    )
    assert first.exit_code == 0, first.output
    assert "claimed 0, sent 0" in first.output
    [pause] = pauses(db)
    assert pause.everywhere
    assert pause.paused_by.startswith("PATRONLINK_START_PAUSED")
    # A worker started later without the setting still finds the pause.
    second = runner.invoke(
        main, [*url, "worker", "--once"], env={"PATRONLINK_DISPATCH_MAX_AGE_SECONDS": "0"}
    )
    assert "claimed 0, sent 0" in second.output
    assert runner.invoke(main, [*url, "sms", "resume"]).exit_code == 0
    third = runner.invoke(
        main, [*url, "worker", "--once"], env={"PATRONLINK_DISPATCH_MAX_AGE_SECONDS": "0"}
    )
    assert "claimed 5, sent 5" in third.output, third.output


def test_texts_older_than_the_maximum_age_go_to_the_error_queue(
    db: Database, clock: FrozenClock
) -> None:
    _agencies(db, clock)
    stale = queue_sms(db, A, "52903991", "yesterday's news", clock)
    clock.advance(hours=2)
    fresh = queue_sms(db, A, "52903992", "still good", clock)
    clock.advance(hours=23)  # the first is 25 hours past its send time, the second 23
    gateway = ScriptedGateway()
    _dispatch(db, clock, gateway, max_age_seconds=DAY)
    assert [m.text for m in gateway.sent] == ["still good"]
    assert _status(db, fresh)["status"] == "sent"
    row = _status(db, stale)
    assert row["status"] == "error"
    assert str(row["last_description"]).startswith(
        "not sent: still queued more than 24 h after its send time (2026-11-23 10:00 UTC)"
    )
    with db.transaction() as repos:
        [attempt] = repos.outbox.attempts(stale)
    assert attempt["outcome"] == "permanent"
    # Staff decide to send it anyway: a retry from the error queue sends it.
    move_one(db, stale, A, MessageStatus.QUEUED, clock)
    _dispatch(db, clock, gateway, max_age_seconds=DAY)
    assert [m.text for m in gateway.sent] == ["still good", "yesterday's news"]


def test_the_age_counts_only_at_the_first_claim_and_zero_turns_it_off(
    db: Database, clock: FrozenClock
) -> None:
    _agencies(db, clock)
    retried = queue_sms(db, A, "52903991", "tried once", clock)
    gateway = ScriptedGateway()
    gateway.script.append(TemporaryGatewayError("busy", http_status=503))
    _dispatch(db, clock, gateway, max_age_seconds=DAY)
    assert _status(db, retried)["status"] == "queued"
    old = queue_sms(db, A, "52903992", "old", clock)
    clock.advance(hours=48)
    _dispatch(db, clock, gateway, max_age_seconds=0)
    assert _status(db, old)["status"] == "sent"  # 0: no maximum age
    assert _status(db, retried)["status"] == "sent"  # in its retries: never stale


@pytest.fixture
def staff(db: Database, settings: Settings, clock: FrozenClock, tmp_path: Path) -> Iterator[str]:
    configure(db, clock, tmp_path)
    add_users(db, clock)
    with live_server(create_app(settings, db, clock)) as url:
        yield url


def test_the_dashboard_shows_a_pause_in_the_users_language(
    db: Database, clock: FrozenClock, staff: str
) -> None:
    pause_sending(db, A, "test", clock, reason="restore")
    with httpx.Client(base_url=staff) as anna, httpx.Client(base_url=staff) as bo:
        log_in(anna, "anna")  # agency A, English
        log_in(bo, "bo")  # agency B, Danish
        page = anna.get("/staff").text
        assert f'id="paused-{A}"' in page
        assert f"Sending texts is paused for {A} since" in page
        assert "(restore)" in page
        assert "paused" not in bo.get("/staff").text  # another agency's pause
        pause_sending(db, None, "test", clock)
        page = bo.get("/staff").text
        assert 'id="paused-all"' in page
        assert "Afsendelse af SMS er sat på pause for alle biblioteker siden" in page
