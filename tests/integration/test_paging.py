"""Paging everywhere (issue 18, item 4): the API, the CLI and the staff UI over real HTTP.

The story of the issue: 117 texts fell into the error queue, and every list said "100" with no
hint of the rest. Each list here must say 117 and lead to the last 17.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from patronlink.cli import main
from patronlink.domain.errors import PermanentGatewayError
from patronlink.domain.import_records import RecordError
from patronlink.domain.patron import Patron, PatronStatus
from patronlink.services.access import create_token
from patronlink.services.outbox import queue_sms
from patronlink.settings import Settings
from patronlink.storage.database import Database
from patronlink.web.app import create_app
from patronlink.worker.dispatcher import Dispatcher
from tests.conftest import FrozenClock
from tests.support.fake_gateway import ScriptedGateway
from tests.support.live_server import live_server
from tests.support.staff_site import ENVIRON, A, B, add_users, configure, log_in, post_form

ERRORS = 117


@pytest.fixture
def client(
    db: Database, settings: Settings, clock: FrozenClock, tmp_path: Path
) -> Iterator[httpx.Client]:
    configure(db, clock, tmp_path)
    add_users(db, clock)
    with live_server(create_app(settings, db, clock)) as url, httpx.Client(base_url=url) as c:
        yield c


def fill_error_queue(db: Database, clock: FrozenClock, agency: str, count: int) -> list[int]:
    ids = [queue_sms(db, agency, "52903991", f"text {i}", clock) for i in range(count)]
    gateway = ScriptedGateway(PermanentGatewayError("Invalid phone number specified.", code="1002"))
    asyncio.run(Dispatcher(db, clock, gateway.factory, environ=ENVIRON).run(once=True))
    return ids


def bearer(db: Database, clock: FrozenClock, agency: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {create_token(db, 'pager', agency, clock)}"}


def next_link(response: httpx.Response) -> str | None:
    found = re.search(r'<([^>]+)>; rel="next"', response.headers.get("Link", ""))
    return found.group(1) if found else None


def test_api_messages_say_117_and_lead_to_the_rest(
    client: httpx.Client, db: Database, clock: FrozenClock
) -> None:
    ids = fill_error_queue(db, clock, A, ERRORS)
    headers = bearer(db, clock, A)
    first = client.get(f"/api/v1/agencies/{A}/messages?status=error&limit=100", headers=headers)
    assert first.status_code == 200
    assert len(first.json()) == 100
    assert first.headers["X-Total-Count"] == str(ERRORS)
    assert first.headers["X-Has-More"] == "true"
    following = next_link(first)
    assert following is not None
    second = client.get(following, headers=headers)
    assert len(second.json()) == ERRORS - 100
    assert second.headers["X-Has-More"] == "false"
    assert next_link(second) is None
    seen = [m["id"] for m in first.json() + second.json()]
    assert sorted(seen) == sorted(ids)  # every text once, none twice


def test_api_patrons_by_status_with_total(
    client: httpx.Client, db: Database, clock: FrozenClock
) -> None:
    with db.transaction() as repos:
        for i in range(7):
            status = PatronStatus.PENDING if i % 2 else PatronStatus.ACTIVE
            repos.patrons.add(Patron(A, f"p{i:02}", f"Person {i}", status=status), clock())
    headers = bearer(db, clock, A)
    pending = client.get(
        f"/api/v1/agencies/{A}/patrons", params={"status": "pending", "limit": 2}, headers=headers
    )
    assert pending.status_code == 200, pending.text
    assert [p["patron_id"] for p in pending.json()] == ["p01", "p03"]
    assert pending.headers["X-Total-Count"] == "3"
    assert all(p["status"] == "pending" for p in pending.json())
    rest = client.get(next_link(pending) or "", headers=headers)
    assert [p["patron_id"] for p in rest.json()] == ["p05"]
    bad = client.get(f"/api/v1/agencies/{A}/patrons?status=asleep", headers=headers)
    assert bad.status_code == 422


def test_api_inbound_and_import_runs_page(
    client: httpx.Client, db: Database, clock: FrozenClock
) -> None:
    headers = bearer(db, clock, A)
    with db.transaction() as repos:
        for i in range(3):
            repos.inbound.add(
                agency_id=A,
                received_at=clock() + dt.timedelta(seconds=i),
                number="+4552903991",
                shortcode="1919",
                text=f"forny {i}",
                command=None,
                patrons_matched=[],
                outcome="not_understood",
                renewed=0,
                refused=0,
                replies=[],
            )
    inbound = client.get(f"/api/v1/agencies/{A}/inbound-sms?limit=2", headers=headers)
    assert inbound.headers["X-Total-Count"] == "3"
    assert len(client.get(next_link(inbound) or "", headers=headers).json()) == 1
    for _ in range(2):
        run = client.post("/api/v1/import-sources/ucl-students/runs?wait=true", headers=headers)
        assert run.status_code == 200, run.text
    runs = client.get("/api/v1/import-sources/ucl-students/runs?limit=1", headers=headers)
    assert len(runs.json()) == 1
    assert runs.headers["X-Has-More"] == "true"
    last = client.get(next_link(runs) or "", headers=headers)
    assert len(last.json()) == 1
    assert last.headers["X-Has-More"] == "false"


def test_cli_sms_list_limit_all_and_table(db: Database, clock: FrozenClock, tmp_path: Path) -> None:
    configure(db, clock, tmp_path)
    fill_error_queue(db, clock, A, 60)
    url = ["--database-url", db.engine.url.render_as_string(hide_password=False)]
    runner = CliRunner()
    default = runner.invoke(main, [*url, "sms", "list", "--status", "error"])
    assert default.exit_code == 0, default.output
    lines = default.stdout.splitlines()
    assert lines[0].split() == [
        "ID",
        "CREATED",
        "(UTC)",
        "AGENCY",
        "STATUS",
        "TO",
        "ATTEMPTS",
        "REASON",
    ]
    assert len(lines) == 1 + 50
    assert "showing 1-50 of 60; use --all" in default.stderr
    # The full reason, not cut at 60 characters, and the time.
    assert lines[1].endswith("1002 Invalid phone number specified.")
    assert "2026-11-23 10:00" in lines[1]
    every = runner.invoke(main, [*url, "sms", "list", "--status", "error", "--all"])
    assert len(every.stdout.splitlines()) == 1 + 60
    assert every.stderr == ""
    as_json = runner.invoke(main, [*url, "sms", "list", "--limit", "3", "--json"])
    assert len(as_json.stdout.splitlines()) == 3
    assert as_json.stdout.startswith("{")


def test_staff_error_queue_pages_and_retries_all_that_match(
    client: httpx.Client, db: Database, clock: FrozenClock
) -> None:
    fill_error_queue(db, clock, A, ERRORS)
    fill_error_queue(db, clock, B, 2)  # another library's: never counted for anna
    assert log_in(client, "anna").status_code in (200, 303)
    first = client.get("/staff/errors")
    assert "1-100 of 117" in first.text
    assert first.text.count('name="ids"') == 100
    assert "data-select-all" in first.text
    assert "Retry all 117" in first.text
    following = re.search(r'<a rel="next" href="([^"]+)"', first.text)
    assert following is not None
    second = client.get(following.group(1).replace("&amp;", "&"))
    assert "101-117 of 117" in second.text
    assert second.text.count('name="ids"') == 17
    assert 'rel="prev"' in second.text

    confirm = client.get("/staff/errors/retry-all?code=1002")
    assert "117 message(s) on the error queue match this filter" in confirm.text
    nothing = client.get("/staff/errors/retry-all?code=9999")
    assert "Nothing found" in nothing.text
    done = post_form(client, "/staff/errors/retry-all", code="1002", agency="", since="", until="")
    assert done.status_code in (200, 303)
    after = client.get("/staff/errors")
    assert "117 message(s) queued again." in after.text
    assert "Nothing found" in after.text
    # Agency B's two are untouched: anna's filter cannot reach them.
    client.cookies.clear()
    log_in(client, "bo")
    assert "1-2 af 2" in client.get("/staff/errors").text  # bo reads Danish


def test_staff_messages_inbound_and_patrons_page(
    client: httpx.Client, db: Database, clock: FrozenClock
) -> None:
    for i in range(5):
        queue_sms(db, A, "52903991", f"hello {i}", clock)
    with db.transaction() as repos:
        for i in range(3):
            repos.patrons.add(
                Patron(A, f"w{i}", f"Waiting {i}", status=PatronStatus.PENDING), clock()
            )
    log_in(client, "anna")
    messages = client.get("/staff/messages?limit=2")
    assert "1-2 of 5" in messages.text
    pending = client.get("/staff/patrons?status=pending&limit=2")
    assert "1-2 of 3" in pending.text
    assert "awaiting approval" in pending.text
    assert "Waiting 0" in pending.text
    inbound = client.get("/staff/inbound")
    assert "Nothing found" in inbound.text


def test_staff_import_runs_and_a_runs_record_errors_page(
    client: httpx.Client, db: Database, clock: FrozenClock
) -> None:
    headers = bearer(db, clock, A)
    for _ in range(3):
        run = client.post("/api/v1/import-sources/ucl-students/runs?wait=true", headers=headers)
        assert run.status_code == 200, run.text
    run_id = run.json()["id"]
    with db.transaction() as repos:
        before = repos.import_runs.count_errors(run_id)
        repos.import_runs.add_errors(
            run_id, [RecordError(10_000 + i, f"finding {i}", f"x{i}") for i in range(1_234)]
        )
    total = before + 1_234
    log_in(client, "anna")

    runs = client.get("/staff/imports?limit=2")
    assert "1-2 of 3" in runs.text
    assert runs.text.count('<tr id="run-') == 2
    following = re.search(r'<a rel="next" href="([^"]+)"', runs.text)
    assert following is not None
    rest = client.get(following.group(1).replace("&amp;", "&"))
    assert "3-3 of 3" in rest.text
    assert rest.text.count('<tr id="run-') == 1
    client.cookies.clear()
    log_in(client, "root")  # an administrator: every library's runs
    assert "1-3 of 3" in client.get("/staff/imports").text
    client.cookies.clear()
    log_in(client, "anna")

    first = client.get(f"/staff/imports/runs/{run_id}")
    assert f"1-500 of {total}" in first.text
    assert first.text.count('<tr class="finding-') == 500
    last = client.get(f"/staff/imports/runs/{run_id}?offset={total - 4}")
    assert last.text.count('<tr class="finding-') == 4
    assert "finding 1233" in last.text  # the last record's error, past the old 1,000 cut
    assert 'rel="next"' not in last.text
    # Another library's run is not found, whatever the page asked for.
    client.cookies.clear()
    log_in(client, "bo")
    assert client.get(f"/staff/imports/runs/{run_id}?offset=500").status_code == 404


def test_staff_tokens_page(client: httpx.Client, db: Database, clock: FrozenClock) -> None:
    for i in range(3):
        create_token(db, f"robot {i}", A if i else None, clock)
    log_in(client, "root")
    first = client.get("/staff/tokens?limit=2")
    assert "1-2 of 3" in first.text
    assert "robot 2" in first.text  # newest first
    assert "robot 1" in first.text
    assert "robot 0" not in first.text
    following = re.search(r'<a rel="next" href="([^"]+)"', first.text)
    assert following is not None
    rest = client.get(following.group(1).replace("&amp;", "&"))
    assert "3-3 of 3" in rest.text
    assert "robot 0" in rest.text


def test_cli_token_and_patron_lists_page_and_speak_json(
    db: Database, clock: FrozenClock, tmp_path: Path
) -> None:
    configure(db, clock, tmp_path)
    for i in range(3):
        create_token(db, f"robot {i}", A, clock)
    with db.transaction() as repos:
        for i in range(5):
            repos.patrons.add(Patron(A, f"p{i}", f"Person {i}", phones=("+4552903991",)), clock())
    url = ["--database-url", db.engine.url.render_as_string(hide_password=False)]
    runner = CliRunner()

    tokens = runner.invoke(main, [*url, "token", "list", "--limit", "2"])
    assert tokens.exit_code == 0, tokens.output
    assert [line.split()[-1] for line in tokens.stdout.splitlines()[1:]] == ["2", "1"]
    assert "showing 1-2 of 3; use --all" in tokens.stderr
    every = runner.invoke(main, [*url, "token", "list", "--all"])
    assert len(every.stdout.splitlines()) == 1 + 3
    assert every.stderr == ""
    skipped = runner.invoke(
        main, [*url, "token", "list", "--json", "--offset", "1", "--limit", "5"]
    )
    assert [json.loads(line)["name"] for line in skipped.stdout.splitlines()] == [
        "robot 1",
        "robot 0",
    ]
    assert skipped.stderr == ""

    wanted = ["--agency", A, "--search", "Person", "--json", "--limit", "2", "--offset", "1"]
    patrons = runner.invoke(main, [*url, "patron", "list", *wanted])
    assert patrons.exit_code == 0, patrons.output
    listed = [json.loads(line) for line in patrons.stdout.splitlines()]
    assert [p["patron_id"] for p in listed] == ["p1", "p2"]
    assert listed[0]["agency_id"] == A
    assert listed[0]["phones"] == ["+4552903991"]
    assert listed[0]["status"] == "active"
    assert "showing 2-3 of 5" in patrons.stderr
    table = runner.invoke(
        main, [*url, "patron", "list", "--agency", A, "--search", "Person", "--all"]
    )
    assert len(table.stdout.splitlines()) == 1 + 5
    bad = runner.invoke(main, [*url, "token", "list", "--limit", "0"])
    assert bad.exit_code == 2
    assert "--limit" in bad.output
