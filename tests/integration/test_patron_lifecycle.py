"""Patrons through their life (issue 18, item 1): API, CLI and staff UI, each change audited.

The anonymisation test reads every table afterwards and finds none of the person's data.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from sqlalchemy import select

from patronlink.cli import main
from patronlink.config.schema import AgencySettings
from patronlink.domain.agency import Agency
from patronlink.domain.patron import Patron, PatronStatus
from patronlink.services.access import create_token
from patronlink.services.demo import DEMO_INBOUND_PASSWORD, DEMO_INBOUND_USER, load_demo
from patronlink.services.outbox import queue_sms
from patronlink.settings import Settings
from patronlink.storage import tables
from patronlink.storage.database import Database
from patronlink.web.app import create_app
from tests.conftest import FrozenClock
from tests.support.live_server import live_server
from tests.support.scheduler import one_scheduler_round
from tests.support.staff_site import A, B, add_users, log_in, post_form

P = f"/api/v1/agencies/{A}/patrons"


@pytest.fixture
def client(db: Database, settings: Settings, clock: FrozenClock) -> Iterator[httpx.Client]:
    load_demo(db, clock)
    with db.transaction() as repos:
        repos.agencies.upsert(Agency(id=B, name="Aarhus"), AgencySettings(), clock())
    add_users(db, clock)
    with live_server(create_app(settings, db, clock)) as url, httpx.Client(base_url=url) as c:
        yield c


@pytest.fixture
def api(db: Database, clock: FrozenClock) -> dict[str, str]:
    return {"Authorization": f"Bearer {create_token(db, 'desk', A, clock)}"}


def register(client: httpx.Client, api: dict[str, str], pid: str, **fields: object) -> None:
    body = {"patron_id": pid, "name": f"Self {pid}", "status": "pending", **fields}
    assert client.post(P, json=body, headers=api).status_code == 201


def audit_actions(client: httpx.Client, api: dict[str, str], pid: str) -> list[str]:
    found = client.get(
        "/api/v1/audit", params={"object_kind": "patron", "object_id": pid}, headers=api
    )
    return [e["action"] for e in reversed(found.json())]


def test_approve_or_reject_a_self_registration(client: httpx.Client, api: dict[str, str]) -> None:
    register(client, api, "9001")
    register(client, api, "9002")
    pending = client.get(P, params={"status": "pending"}, headers=api).json()
    assert [p["patron_id"] for p in pending] == ["9001", "9002"]

    approved = client.post(f"{P}/9001/approve", headers=api)
    assert approved.status_code == 200, approved.text
    assert approved.json()["status"] == "active"
    again = client.post(f"{P}/9001/approve", headers=api)
    assert again.status_code == 409
    assert "active" in again.json()["error"]

    assert client.post(f"{P}/9002/reject", headers=api).status_code == 204
    assert client.get(f"{P}/9002", headers=api).status_code == 404
    assert client.get(P, params={"status": "pending"}, headers=api).json() == []
    assert audit_actions(client, api, "9001") == ["patron.approve"]
    assert audit_actions(client, api, "9002") == ["patron.reject"]
    assert client.post(f"{P}/9999/approve", headers=api).status_code == 404


def test_edit_contact_fields(client: httpx.Client, api: dict[str, str], db: Database) -> None:
    edited = client.patch(
        f"{P}/1003",
        json={"email": "mette@example.org", "phones": ["20 11 22 44"], "zip": "8700"},
        headers=api,
    )
    assert edited.status_code == 200, edited.text
    body = edited.json()
    assert (body["email"], body["phones"], body["zip"]) == (
        "mette@example.org",
        ["+4520112244"],
        "8700",
    )
    assert body["name"] == "Mette Hansen"  # not sent, not changed
    with db.engine.connect() as conn:
        numbers = conn.execute(select(tables.patron_phones.c.number)).scalars().all()
    assert "+4520112244" in numbers  # the SMS lookup finds her by the new number
    assert "+4520112233" not in numbers

    bad = client.patch(f"{P}/1003", json={"phones": ["not a number"]}, headers=api)
    assert bad.status_code == 422
    unknown = client.patch(f"{P}/1003", json={"patron_id": "x"}, headers=api)
    assert unknown.status_code == 422
    assert client.get(f"{P}/1003", headers=api).json()["phones"] == ["+4520112244"]
    entries = client.get("/api/v1/audit", params={"action": "patron.update"}, headers=api).json()
    assert [e["details"]["fields"] for e in entries] == [["email", "phones", "zip"]]
    assert "mette@example.org" not in str(entries)  # fields are named, values are not


def test_a_blocked_patron_cannot_renew_by_sms(
    client: httpx.Client, api: dict[str, str], db: Database
) -> None:
    no_reason = client.post(f"{P}/1003/block", json={"reason": "  "}, headers=api)
    assert no_reason.status_code == 422
    blocked = client.post(f"{P}/1003/block", json={"reason": "lost card"}, headers=api)
    assert blocked.status_code == 200, blocked.text
    assert (blocked.json()["status"], blocked.json()["status_reason"]) == ("blocked", "lost card")

    renew = client.get(
        f"/rest/{A}/smsgateway",
        params={
            "user": DEMO_INBOUND_USER,
            "password": DEMO_INBOUND_PASSWORD,
            "shortcode": "1910",
            "countrycode": "45",
            "number": "20112233",
            "text": "asd forny alle",
        },
    )
    assert renew.status_code == 200
    with db.engine.connect() as conn:
        inbound = conn.execute(select(tables.inbound_sms)).mappings().one()
        replies = (
            conn.execute(
                select(tables.messages.c.text).where(tables.messages.c.to_number == "+4520112233")
            )
            .scalars()
            .all()
        )
    assert inbound["renewed"] == 0
    assert inbound["refused"] >= 1
    assert any("spærret" in r for r in replies), replies  # the reply says the card is blocked

    unblocked = client.post(f"{P}/1003/unblock", headers=api)
    assert unblocked.json()["status"] == "active"
    deactivated = client.post(f"{P}/1003/deactivate", headers=api)
    assert deactivated.json()["status"] == "inactive"
    assert audit_actions(client, api, "1003") == [
        "patron.block",
        "patron.unblock",
        "patron.deactivate",
    ]


def test_anonymise_leaves_no_trace_of_the_person(
    client: httpx.Client, api: dict[str, str], db: Database, clock: FrozenClock
) -> None:
    # Mette, with every kind of personal data and a history: texts to her, a renewal request.
    assert client.patch(
        f"{P}/1003",
        json={
            "email": "mette.hansen@example.org",
            "address_lines": ["Søndergade 7"],
            "zip": "8700",
            "birth_date": "1980-02-29",
            "sms_number": "20 99 88 77",
        },
        headers=api,
    ).is_success
    waiting = queue_sms(db, A, "20112233", "Kære Mette Hansen, din bog er klar", clock)
    client.get(
        f"/rest/{A}/smsgateway",
        params={
            "user": DEMO_INBOUND_USER,
            "password": DEMO_INBOUND_PASSWORD,
            "shortcode": "1910",
            "countrycode": "45",
            "number": "20112233",
            "text": "asd forny alle Mette",
        },
    )
    with db.engine.connect() as conn:
        loans_before = conn.execute(select(tables.loans)).mappings().all()

    done = client.post(f"{P}/1003/anonymise", headers=api)
    assert done.status_code == 200, done.text
    anonymous = done.json()["patron_id"]
    assert anonymous.startswith("anonymised-")
    assert client.get(f"{P}/1003", headers=api).status_code == 404

    traces = [
        "Mette",
        "Hansen",
        "mette.hansen@example.org",
        "Søndergade",
        "1980-02-29",
        "20112233",
        "20998877",
        "1003",
    ]
    with db.engine.connect() as conn:
        for table in tables.metadata.sorted_tables:
            for row in conn.execute(select(table)).mappings():
                text = " ".join(str(v) for v in row.values())
                for trace in traces:
                    if trace == "1003" and table.name in ("items", "loans", "message_attempts"):
                        continue  # numbers of other things that happen to contain the digits
                    assert trace not in text, (table.name, trace, text)
        loans_after = conn.execute(select(tables.loans)).mappings().all()
        status = conn.execute(
            select(tables.messages.c.status).where(tables.messages.c.id == waiting)
        ).scalar_one()
    assert status == "cancelled"  # a text still waiting for her has no number to go to
    # The loans' history is kept, attached to the anonymous row.
    assert [(r["id"], r["item_pk"], r["due_date"]) for r in loans_after] == [
        (r["id"], r["item_pk"], r["due_date"]) for r in loans_before
    ]
    kept = client.get(f"{P}/{anonymous}/loans", headers=api, params={"include_returned": True})
    assert len(kept.json()) == 1
    assert audit_actions(client, api, anonymous)[-1] == "patron.anonymise"


def test_cli_lists_and_moves_patrons(
    client: httpx.Client, api: dict[str, str], db: Database
) -> None:
    register(client, api, "9101")
    register(client, api, "9102")
    url = ["--database-url", db.engine.url.render_as_string(hide_password=False)]
    runner = CliRunner()
    listed = runner.invoke(main, [*url, "patron", "list", "--agency", A, "--status", "pending"])
    assert listed.exit_code == 0, listed.output
    assert [line.split()[0] for line in listed.stdout.splitlines()] == ["PATRON", "9101", "9102"]
    limited = runner.invoke(
        main, [*url, "patron", "list", "--agency", A, "--status", "pending", "--limit", "1"]
    )
    assert "showing 1-1 of 2; use --all" in limited.stderr
    assert runner.invoke(main, [*url, "patron", "approve", A, "9101"]).stdout == "9101: active\n"
    refused = runner.invoke(main, [*url, "patron", "block", A, "9101"])
    assert refused.exit_code != 0
    blocked = runner.invoke(main, [*url, "patron", "block", A, "9101", "--reason", "fraud"])
    assert blocked.stdout == "9101: blocked\n"
    erased = runner.invoke(main, [*url, "patron", "anonymise", A, "9102", "--yes"])
    assert erased.exit_code == 0, erased.output
    assert "anonymised as anonymised-" in erased.stdout
    cli = client.get("/api/v1/audit", params={"action": "patron.block"}, headers=api).json()
    assert [(e["actor_kind"], e["details"]["reason"]) for e in cli] == [("cli", "fraud")]


def test_staff_page_approves_blocks_and_edits(
    client: httpx.Client, api: dict[str, str], clock: FrozenClock
) -> None:
    register(client, api, "9201", phones=["52 11 11 11"])
    assert log_in(client, "anna").status_code in (200, 303)
    page = client.get(f"/staff/patrons/{A}/9201")
    assert "awaiting approval" in page.text
    assert 'id="patron-approve"' in page.text
    assert 'id="patron-unblock"' not in page.text
    done = post_form(client, f"/staff/patrons/{A}/9201/approve")
    assert done.status_code in (200, 303)
    assert "The patron is now: active." in client.get(f"/staff/patrons/{A}/9201").text
    post_form(client, f"/staff/patrons/{A}/9201/block", reason="unpaid fines")
    shown = client.get(f"/staff/patrons/{A}/9201").text
    assert "blocked (unpaid fines)" in shown
    post_form(
        client,
        f"/staff/patrons/{A}/9201/edit",
        name="Self Edited",
        email="",
        phones="52 11 11 12",
        sms_number="",
        address="",
        zip="",
    )
    assert client.get(f"{P}/9201", headers=api).json()["phones"] == ["+4552111112"]
    refused = post_form(client, f"/staff/patrons/{A}/9201/anonymise")
    assert refused.status_code == 422
    actors = client.get(
        "/api/v1/audit", params={"object_id": "9201", "actor": "anna"}, headers=api
    ).json()
    assert [e["action"] for e in reversed(actors)] == [
        "patron.approve",
        "patron.block",
        "patron.update",
    ]


def test_retention_rule_dry_run_then_the_worker_anonymises(
    db: Database, clock: FrozenClock, tmp_path: Path
) -> None:
    load_demo(db, clock)
    config = tmp_path / "retention.toml"
    config.write_text(
        f'[[agencies]]\nid = "{A}"\nname = "Horsens"\ntimezone = "Europe/Copenhagen"\n'
        'language = "da"\ncountry_code = "45"\nretention_days = 30\n'
        'branches = [{ code = "HOR", name = "Hovedbiblioteket" }]\n'
    )
    url = ["--database-url", db.engine.url.render_as_string(hide_password=False)]
    runner = CliRunner()
    assert runner.invoke(main, [*url, "config", "apply", str(config)]).exit_code == 0
    today = clock().date()
    with db.transaction() as repos:
        for pid, expiry in (("7001", 40), ("7002", 10)):
            repos.patrons.add(
                Patron(A, pid, f"Old {pid}", expiry_date=today - dt.timedelta(days=expiry)),
                clock(),
            )
        repos.patrons.add(
            Patron(A, "7003", "Gone Away", status=PatronStatus.INACTIVE),
            clock() - dt.timedelta(days=45),
        )
        karen = repos.patrons.get_with_pk(A, "1001")
        assert karen is not None
        # Karen expired long ago but still has books out: she is kept.
        repos.patrons.update(
            karen[0],
            dataclasses.replace(karen[1], expiry_date=today - dt.timedelta(days=90)),
            clock(),
        )
    dry = runner.invoke(main, [*url, "patron", "retention", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert dry.stdout.splitlines() == [f"{A}  7001  due", f"{A}  7003  due"]
    with db.transaction() as repos:
        assert repos.patrons.get(A, "7001") is not None  # a dry run changes nothing

    one_scheduler_round(db, clock)
    with db.transaction() as repos:
        assert repos.patrons.get(A, "7001") is None
        assert repos.patrons.get(A, "7003") is None
        assert repos.patrons.get(A, "7002") is not None
        assert repos.patrons.get(A, "1001") is not None
    with db.engine.connect() as conn:
        actors = (
            conn.execute(
                select(tables.audit_log.c.actor_kind).where(
                    tables.audit_log.c.action == "patron.anonymise"
                )
            )
            .scalars()
            .all()
        )
    assert actors == ["system", "system"]
