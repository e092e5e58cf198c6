"""The delivery state of texts, end to end on both backends: the dispatcher records ``pending``
when a report is expected, reports move it on, and failed deliveries are on the staff error
queue (API ``?delivery=failed``, ``sms list --delivery failed``, the error-queue page in Danish and
English) where staff send them again or dismiss them."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from patronlink.cli import main
from patronlink.domain.delivery import Delivery, Report
from patronlink.gateways.base import GatewayConfig, OutgoingSms, SendResult
from patronlink.services.access import create_token
from patronlink.settings import Settings
from patronlink.storage.database import Database
from patronlink.storage.outbox import NewMessage
from patronlink.web.app import create_app
from patronlink.worker.dispatcher import Dispatcher
from tests.conftest import FrozenClock
from tests.support.live_server import live_server
from tests.support.staff_site import ENVIRON, A, B, add_users, configure, log_in, post_form


class ReportingGateway:
    """A gateway that takes every text and says a report will follow (or not)."""

    name = "reporting"
    can_schedule = False

    def __init__(self, *, reports: bool) -> None:
        self.reports = reports
        self.seen: list[OutgoingSms] = []

    def factory(self, config: GatewayConfig) -> ReportingGateway:
        return self

    async def send(self, message: OutgoingSms) -> SendResult:
        self.seen.append(message)
        return SendResult(
            gateway_message_id=f"gw-{message.message_id}", reports_expected=self.reports
        )

    async def aclose(self) -> None:
        return None


def queue(db: Database, clock: FrozenClock, agency: str = A, n: int = 1) -> list[int]:
    now = clock()
    new = [
        NewMessage(agency, "+4552903991", f"Hej {i}", "GSM-7", 1, "staff", now) for i in range(n)
    ]
    with db.transaction() as repos:
        return repos.outbox.enqueue(new, now)


def dispatch(db: Database, clock: FrozenClock, gateway: ReportingGateway) -> None:
    asyncio.run(Dispatcher(db, clock, gateway.factory, environ=ENVIRON).run(once=True))


def report(db: Database, clock: FrozenClock, agency: str, message_id: int, state: Delivery) -> str:
    code = {"delivered": "1001", "failed": "2104", "pending": "1005"}[state.value]
    text = {"delivered": "Billed and delivered", "failed": "Unknown subscriber"}.get(
        state.value, ""
    )
    with db.transaction() as repos:
        return repos.outbox.apply_report(agency, Report(message_id, state, code, text), clock())


@pytest.fixture
def site(db: Database, clock: FrozenClock, tmp_path: Path) -> None:
    configure(db, clock, tmp_path)
    add_users(db, clock)


@pytest.mark.parametrize(("reports", "expected"), [(True, "pending"), (False, "none")])
def test_dispatcher_records_whether_a_report_is_expected(
    db: Database, clock: FrozenClock, site: None, *, reports: bool, expected: str
) -> None:
    [message_id] = queue(db, clock)
    gateway = ReportingGateway(reports=reports)
    dispatch(db, clock, gateway)
    assert [m.message_id for m in gateway.seen] == [message_id]  # the driver gets our id
    with db.transaction() as repos:
        row = repos.outbox.get(message_id)
    assert row is not None
    assert (row["status"], row["delivery"]) == ("sent", expected)


def test_reports_apply_once_and_only_within_the_agency(
    db: Database, clock: FrozenClock, site: None
) -> None:
    [message_id] = queue(db, clock)
    dispatch(db, clock, ReportingGateway(reports=True))
    assert report(db, clock, B, message_id, Delivery.DELIVERED) == "unknown"  # not B's text
    assert report(db, clock, A, 999999, Delivery.DELIVERED) == "unknown"
    assert report(db, clock, A, message_id, Delivery.PENDING) == "applied"
    assert report(db, clock, A, message_id, Delivery.FAILED) == "applied"
    assert report(db, clock, A, message_id, Delivery.DELIVERED) == "ignored"  # first final wins
    assert report(db, clock, A, message_id, Delivery.PENDING) == "ignored"
    with db.transaction() as repos:
        row = repos.outbox.get(message_id)
    assert row is not None
    assert (row["delivery"], row["delivery_code"], row["delivered_at"]) == (
        "failed",
        "2104",
        clock(),
    )


def test_a_batch_of_reports_applies_as_one_after_the_other(
    db: Database, clock: FrozenClock, site: None
) -> None:
    first, second, third = queue(db, clock, n=3)
    dispatch(db, clock, ReportingGateway(reports=True))
    at = clock() - dt.timedelta(minutes=3)
    batch = [
        Report(third, Delivery.PENDING, "1005", "", at),
        Report(first, Delivery.PENDING, "1005", ""),
        Report(None, Delivery.DELIVERED, "1001", ""),
        Report(first, Delivery.FAILED, "2104", "Unknown subscriber", at),
        Report(999999, Delivery.DELIVERED, "1001", ""),
        Report(first, Delivery.DELIVERED, "1001", ""),  # after a final one in the same batch
        Report(second, Delivery.DELIVERED, "1001", "x\x00" + "y" * 3000),
        Report(second, Delivery.PENDING, "1005", ""),
    ]
    with db.transaction() as repos:
        outcomes = repos.outbox.apply_reports(A, batch, clock())
        assert repos.outbox.apply_reports(B, batch[:2], clock()) == ["unknown", "unknown"]
    assert outcomes == [
        "applied", "applied", "unknown", "applied", "unknown", "ignored", "applied", "ignored",
    ]  # fmt: skip
    with db.transaction() as repos:
        rows = [repos.outbox.get(m) for m in (first, second, third)]
    assert [(r["delivery"], r["delivery_code"], r["delivered_at"]) for r in rows if r] == [
        ("failed", "2104", at),
        ("delivered", "1001", clock()),
        ("pending", "1005", None),
    ]
    assert rows[1] is not None
    assert rows[1]["delivery_description"] == "x" + "y" * 1999
    assert rows[0] is not None
    assert rows[0]["delivery_description"] == "Unknown subscriber"


def test_a_report_that_waits_for_a_concurrent_final_one_does_not_undo_it(
    db: Database, clock: FrozenClock, site: None
) -> None:
    """Two batches on the same text in two transactions: the second waits for the first's lock
    and then sees its final state (PostgreSQL: the lock and the write are one statement, which
    must read the text as the first left it, not as its snapshot had it)."""
    [message_id] = queue(db, clock)
    dispatch(db, clock, ReportingGateway(reports=True))
    late = [
        Report(message_id, Delivery.DELIVERED, "1001", "Billed and delivered"),
        Report(message_id, Delivery.PENDING, "1005", ""),
    ]

    def second() -> list[str]:
        with db.transaction() as repos:
            return repos.outbox.apply_reports(A, late, clock())

    pool = ThreadPoolExecutor(1)
    try:
        with db.transaction() as repos:
            failed = Report(message_id, Delivery.FAILED, "2104", "Unknown subscriber")
            assert repos.outbox.apply_reports(A, [failed], clock()) == ["applied"]
            waiting = pool.submit(second)
            time.sleep(0.3)
            assert not waiting.done()  # held by this transaction's lock on the text
        assert waiting.result(timeout=30) == ["ignored", "ignored"]
    finally:
        pool.shutdown()
    with db.transaction() as repos:
        row = repos.outbox.get(message_id)
    assert row is not None
    assert (row["delivery"], row["delivery_code"]) == ("failed", "2104")


@pytest.fixture
def api(db: Database, settings: Settings, clock: FrozenClock, site: None) -> Iterator[httpx.Client]:
    with live_server(create_app(settings, db, clock)) as url, httpx.Client(base_url=url) as c:
        yield c


def test_api_lists_failed_deliveries_and_staff_send_again_or_dismiss(
    api: httpx.Client, db: Database, clock: FrozenClock
) -> None:
    delivered, failed, dismissed = queue(db, clock, n=3)
    dispatch(db, clock, ReportingGateway(reports=True))
    report(db, clock, A, delivered, Delivery.DELIVERED)
    report(db, clock, A, failed, Delivery.FAILED)
    report(db, clock, A, dismissed, Delivery.FAILED)
    headers = {"Authorization": f"Bearer {create_token(db, 'test', A, clock)}"}
    base = f"/api/v1/agencies/{A}/messages"
    listed = api.get(base, params={"delivery": "failed"}, headers=headers).json()
    assert sorted(m["id"] for m in listed) == [failed, dismissed]
    one = api.get(f"{base}/{delivered}", headers=headers).json()
    assert (one["delivery"], one["delivery_code"], one["delivery_description"]) == (
        "delivered",
        "1001",
        "Billed and delivered",
    )
    assert one["delivered_at"] is not None
    # A delivered text is not on the error queue: nothing to send again.
    assert api.post(f"{base}/{delivered}/retry", headers=headers).status_code == 409
    again = api.post(f"{base}/{failed}/retry", headers=headers).json()
    assert (again["status"], again["delivery"], again["attempts"]) == ("queued", "none", 0)
    gone = api.post(f"{base}/{dismissed}/cancel", headers=headers).json()
    assert (gone["status"], gone["delivery"]) == ("cancelled", "failed")
    assert (
        api.get(base, params={"delivery": "failed", "status": "sent"}, headers=headers).json() == []
    )
    assert api.get(base, params={"delivery": "lost"}, headers=headers).status_code == 422


def test_sms_list_delivery_failed(
    db: Database, clock: FrozenClock, settings: Settings, site: None
) -> None:
    delivered, failed = queue(db, clock, n=2)
    dispatch(db, clock, ReportingGateway(reports=True))
    report(db, clock, A, delivered, Delivery.DELIVERED)
    report(db, clock, A, failed, Delivery.FAILED)
    env = {"PATRONLINK_DATABASE_URL": settings.database_url}
    runner = CliRunner()
    result = runner.invoke(main, ["sms", "list", "--delivery", "failed", "--json"], env=env)
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.output.splitlines()]
    assert [(r["id"], r["delivery"], r["delivery_code"]) for r in rows] == [
        (failed, "failed", "2104")
    ]
    text = runner.invoke(main, ["sms", "list", "--delivery", "failed"], env=env)
    assert "2104 Unknown subscriber" in text.output
    bad = runner.invoke(main, ["sms", "list", "--delivery", "lost"], env=env)
    assert bad.exit_code == 2


@pytest.mark.parametrize(
    ("user", "heading", "reason_label", "again", "dismiss"),
    [
        ("anna", "Sent but not delivered", "Operator&#39;s reason", "Send again", "Dismiss"),
        ("bo", "Sendt, men ikke leveret", "Teleselskabets begrundelse", "Send igen", "Fjern"),
    ],
)
def test_error_queue_page_shows_undelivered_texts_with_the_reason(
    api: httpx.Client,
    db: Database,
    clock: FrozenClock,
    user: str,
    heading: str,
    reason_label: str,
    again: str,
    dismiss: str,
) -> None:
    agency = A if user == "anna" else B
    delivered, failed = queue(db, clock, agency=agency, n=2)
    dispatch(db, clock, ReportingGateway(reports=True))
    report(db, clock, agency, delivered, Delivery.DELIVERED)
    report(db, clock, agency, failed, Delivery.FAILED)
    log_in(api, user)
    page = api.get("/staff/errors")
    assert page.status_code == 200
    assert heading in page.text
    assert reason_label in page.text
    assert f'id="undelivered-{failed}"' in page.text
    assert f'id="undelivered-{delivered}"' not in page.text
    assert "Unknown subscriber" in page.text
    assert again in page.text
    assert dismiss in page.text
    moved = post_form(api, f"/staff/messages/{failed}/retry", next="/staff/errors")
    assert moved.status_code in (200, 303)
    with db.transaction() as repos:
        row = repos.outbox.get(failed)
    assert row is not None
    assert (row["status"], row["delivery"]) == ("queued", "none")
    assert f'id="undelivered-{failed}"' not in api.get("/staff/errors").text
    detail = api.get(f"/staff/messages/{delivered}")
    assert "Billed and delivered" in detail.text
    assert 'id="delivery"' in detail.text


def test_next_attempt_after_retry_is_now(db: Database, clock: FrozenClock, site: None) -> None:
    [failed] = queue(db, clock)
    dispatch(db, clock, ReportingGateway(reports=True))
    report(db, clock, A, failed, Delivery.FAILED)
    clock.advance(minutes=5)
    from patronlink.domain.outbox import MessageStatus
    from patronlink.services.outbox import move_one

    move_one(db, failed, A, MessageStatus.QUEUED, clock)
    gateway = ReportingGateway(reports=True)
    dispatch(db, clock, gateway)
    assert [m.message_id for m in gateway.seen] == [failed]  # sent again, once
    with db.transaction() as repos:
        row = repos.outbox.get(failed)
    assert row is not None
    assert (row["status"], row["delivery"]) == ("sent", "pending")
    assert row["sent_at"] == clock()


LINK_CONFIG = """
[[agencies]]
id = "DK-761500"
name = "Horsens"

[agencies.sms]
driver = "linkmobility"
url = "https://wsx.sp247.net/sms/send"
username = "u"
password = "p"
platform_id = "COMMON_API"
platform_partner_id = "22928"
source = "{source}"
dlr_gate_id = "Gate-7xY"
"""


@pytest.mark.parametrize(
    ("source", "ok"), [("HorsensBib", True), ("1910", True), ("Horsens Bibliotek", False)]
)
def test_config_apply_checks_the_link_sender(
    db: Database, settings: Settings, tmp_path: Path, source: str, *, ok: bool
) -> None:
    path = tmp_path / "libraries.toml"
    path.write_text(LINK_CONFIG.format(source=source))
    result = CliRunner().invoke(
        main, ["--database-url", settings.database_url, "config", "apply", str(path)], env={}
    )
    with db.transaction() as repos:
        stored = repos.agencies.get_with_settings("DK-761500", branches=False)
    if ok:
        assert result.exit_code == 0, result.output
        assert stored is not None
        assert stored[1].sms.dlr_gate_id == "Gate-7xY"
    else:
        assert result.exit_code == 2
        assert "key agencies[0].sms" in result.output
        assert "LINK Mobility takes a sender of type ALPHANUMERIC" in result.output
        assert stored is None
