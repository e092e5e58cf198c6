"""Alerting (issue 18, item 6, the dashboard and start-up parts): a failing gateway and an import
source that failed twice show a banner until they recover; serve and worker name the ${VAR}s
they lack, and the agency's texts wait as queued instead of failing."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from sqlalchemy import select

from patronlink.cli import main
from patronlink.domain.errors import TemporaryGatewayError
from patronlink.domain.import_runs import Trigger
from patronlink.services.import_patrons import run_import
from patronlink.services.outbox import queue_sms
from patronlink.settings import Settings
from patronlink.storage import tables
from patronlink.storage.database import Database
from patronlink.web.app import create_app
from patronlink.worker.dispatcher import Dispatcher
from tests.conftest import FrozenClock
from tests.support.fake_gateway import ScriptedGateway
from tests.support.live_server import live_server
from tests.support.staff_site import ENVIRON, A, add_users, configure, log_in


@pytest.fixture
def site(
    db: Database, settings: Settings, clock: FrozenClock, tmp_path: Path
) -> Iterator[httpx.Client]:
    configure(db, clock, tmp_path)
    add_users(db, clock)
    with live_server(create_app(settings, db, clock)) as url, httpx.Client(base_url=url) as c:
        log_in(c, "anna")
        yield c


def send_round(db: Database, clock: FrozenClock, gateway: ScriptedGateway, count: int) -> None:
    for i in range(count):
        queue_sms(db, A, "52903991", f"t{i}", clock)
    asyncio.run(Dispatcher(db, clock, gateway.factory, environ=ENVIRON).run(once=True))


def test_a_failing_gateway_shows_a_banner_until_it_recovers(
    site: httpx.Client, db: Database, clock: FrozenClock
) -> None:
    assert 'id="alert-gateway-' not in site.get("/staff").text
    down = ScriptedGateway(TemporaryGatewayError("HTTP 503", http_status=503))
    send_round(db, clock, down, 4)
    banner = site.get("/staff").text
    assert f'id="alert-gateway-{A}"' in banner
    assert "is failing: 4 attempts in the last 15 minutes" in banner
    assert "HTTP 503" in banner
    clock.advance(minutes=1)
    send_round(db, clock, ScriptedGateway(), 1)  # it recovers: one text goes out
    assert 'id="alert-gateway-' not in site.get("/staff").text


def test_an_import_source_failing_twice_shows_a_banner(
    site: httpx.Client, db: Database, clock: FrozenClock, tmp_path: Path
) -> None:
    feed = tmp_path / "students.json"
    feed.write_text("{ not json")
    run_import(db, "ucl-students", trigger=Trigger.CLI, clock=clock, environ=ENVIRON)
    assert 'id="alert-source-' not in site.get("/staff").text  # once is not yet an alert
    clock.advance(minutes=1)
    run_import(db, "ucl-students", trigger=Trigger.CLI, clock=clock, environ=ENVIRON)
    banner = site.get("/staff").text
    assert 'id="alert-source-ucl-students"' in banner
    assert "failed its last two runs" in banner
    feed.write_text('{"users": [], "totalRecords": 0}')
    run_import(db, "ucl-students", trigger=Trigger.CLI, clock=clock, environ=ENVIRON)
    assert 'id="alert-source-' not in site.get("/staff").text


def test_a_missing_secret_holds_texts_as_queued_and_is_named_at_start(
    db: Database, clock: FrozenClock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    configure(db, clock, tmp_path)
    message = queue_sms(db, A, "52903991", "Hej", clock)
    gateway = ScriptedGateway()
    asyncio.run(Dispatcher(db, clock, gateway.factory, environ={}).run(once=True))
    assert gateway.sent == []
    with db.engine.connect() as conn:
        row = (
            conn.execute(select(tables.messages).where(tables.messages.c.id == message))
            .mappings()
            .one()
        )
    assert row["status"] == "queued"  # not on the error queue
    assert "STAFF_UI_SMS_PASSWORD" in row["last_description"]
    # With the variable set, the same text goes out.
    clock.advance(minutes=6)
    asyncio.run(Dispatcher(db, clock, gateway.factory, environ=ENVIRON).run(once=True))
    assert len(gateway.sent) == 1

    monkeypatch.delenv("STAFF_UI_SMS_PASSWORD", raising=False)
    url = db.engine.url.render_as_string(hide_password=False)
    result = CliRunner().invoke(main, ["--database-url", url, "worker", "--once"])
    assert result.exit_code == 0, result.output
    assert (
        f"warning: agency {A}: environment variable(s) not set in this process: "
        "STAFF_UI_SMS_PASSWORD" in result.stderr
    )
    assert "STAFF_UI_SMS_PASSWORD" not in os.environ
