"""The audit log (issue 18, item 5): each audited action performed for real finds its entry.

Actions go through the staff API (a token), the staff UI (a signed-in user) and the CLI, against
real SQLite and PostgreSQL; the log is read back through ``GET /api/v1/audit`` and the
administrators' page ``/staff/audit``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from patronlink.cli import main
from patronlink.domain.errors import PermanentGatewayError
from patronlink.services.access import create_token
from patronlink.services.outbox import queue_sms
from patronlink.settings import Settings
from patronlink.storage import tables
from patronlink.storage.database import Database
from patronlink.web.app import create_app
from patronlink.worker.dispatcher import Dispatcher
from tests.conftest import FrozenClock
from tests.support.fake_gateway import ScriptedGateway
from tests.support.live_server import live_server
from tests.support.staff_site import ENVIRON, A, B, add_users, configure, log_in, post_form


@pytest.fixture
def client(
    db: Database, settings: Settings, clock: FrozenClock, tmp_path: Path
) -> Iterator[httpx.Client]:
    configure(db, clock, tmp_path)
    add_users(db, clock)
    with live_server(create_app(settings, db, clock)) as url, httpx.Client(base_url=url) as c:
        yield c


def bearer(db: Database, clock: FrozenClock, agency: str | None, name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {create_token(db, name, agency, clock)}"}


def on_error_queue(db: Database, clock: FrozenClock, agency: str, count: int) -> list[int]:
    ids = [queue_sms(db, agency, "52903991", f"text {i}", clock) for i in range(count)]
    gateway = ScriptedGateway(PermanentGatewayError("refused", code="1002"))
    asyncio.run(Dispatcher(db, clock, gateway.factory, environ=ENVIRON).run(once=True))
    return ids


def audit_rows(db: Database) -> int:
    with db.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(tables.audit_log)).scalar_one()


def entries(client: httpx.Client, headers: dict[str, str], **params: object) -> list[dict]:  # type: ignore[type-arg]
    response = client.get("/api/v1/audit", params=params, headers=headers)
    assert response.status_code == 200, response.text
    found: list[dict] = response.json()  # type: ignore[type-arg]
    return found


def test_each_audited_action_leaves_its_entry(
    client: httpx.Client, db: Database, clock: FrozenClock, tmp_path: Path
) -> None:
    admin = bearer(db, clock, None, "auditor")
    api = bearer(db, clock, A, "horsens-integration")
    first, second, third = on_error_queue(db, clock, A, 3)

    # The staff API: retry one, cancel one, retry all that match a filter.
    assert client.post(f"/api/v1/agencies/{A}/messages/{first}/retry", headers=api).is_success
    assert client.post(f"/api/v1/agencies/{A}/messages/{second}/cancel", headers=api).is_success
    bulk = client.post(f"/api/v1/agencies/{A}/messages/retry", json={"code": "1002"}, headers=api)
    assert bulk.json()["queued"] == [third]
    # An import run started through the API.
    started = client.post("/api/v1/import-sources/ucl-students/runs?wait=true", headers=api)
    assert started.status_code in (200, 201), started.text

    by_action = {(e["action"], e["object_id"]): e for e in entries(client, admin, limit=100)}
    retry = by_action[("message.retry", str(first))]
    assert retry["actor_kind"] == "token"
    assert retry["actor"].startswith("horsens-integration (#")
    assert retry["source"] == "127.0.0.1"
    assert retry["agency_id"] == A
    assert retry["object_kind"] == "message"
    assert ("message.cancel", str(second)) in by_action
    assert ("message.retry", str(third)) in by_action
    run = by_action[("import.run", "ucl-students")]
    assert run["details"]["trigger"] == "staff"
    assert isinstance(run["details"]["run_id"], int)
    token_entry = by_action[("token.create", str(_token_id(db, "horsens-integration")))]
    assert token_entry["details"] == {"name": "horsens-integration"}

    # The staff UI, signed in as anna of A: retrying a text is logged with her name.
    (fourth,) = on_error_queue(db, clock, A, 1)
    assert log_in(client, "anna").status_code in (200, 303)
    done = post_form(client, "/staff/errors/retry", ids=[str(fourth)], next="/staff/errors")
    assert done.status_code in (200, 303)
    staff = entries(client, admin, object_kind="message", object_id=str(fourth))
    assert [(e["actor_kind"], e["actor"], e["action"]) for e in staff] == [
        ("staff", "anna", "message.retry")
    ]

    # The CLI: config apply, token create and sms cancel, named by the operator and host.
    config = tmp_path / "more.toml"
    config.write_text(
        f'[[agencies]]\nid = "{B}"\nname = "Aarhus Bibliotekerne (renamed)"\n'
        'timezone = "Europe/Copenhagen"\nlanguage = "da"\ncountry_code = "45"\n'
    )
    (fifth,) = on_error_queue(db, clock, A, 1)
    url = db.engine.url.render_as_string(hide_password=False)
    runner = CliRunner()
    for args in (
        ["config", "apply", str(config)],
        ["token", "create", "--name", "cli-made"],
        ["sms", "cancel", str(fifth)],
        ["sms", "pause", "--agency", A, "--reason", "gateway maintenance"],
        ["sms", "resume", "--agency", A],
    ):
        result = runner.invoke(main, ["--database-url", url, *args])
        assert result.exit_code == 0, result.output
    cli = [e for e in entries(client, admin) if e["actor_kind"] == "cli"]
    assert {e["action"] for e in cli} == {
        "config.apply",
        "token.create",
        "message.cancel",
        "sms.pause",
        "sms.resume",
    }
    paused = next(e for e in cli if e["action"] == "sms.pause")
    assert (paused["object_kind"], paused["object_id"], paused["agency_id"]) == ("sending", A, A)
    assert paused["details"] == {"reason": "gateway maintenance"}
    applied = next(e for e in cli if e["action"] == "config.apply")
    assert applied["details"]["changes"] == [f"agency {B}: updated"]
    assert all(e["source"] for e in cli)


def test_a_failed_action_leaves_no_entry(
    client: httpx.Client, db: Database, clock: FrozenClock
) -> None:
    api = bearer(db, clock, A, "horsens")
    (message,) = on_error_queue(db, clock, A, 1)
    assert client.post(f"/api/v1/agencies/{A}/messages/{message}/retry", headers=api).is_success
    before = audit_rows(db)
    again = client.post(f"/api/v1/agencies/{A}/messages/{message}/retry", headers=api)
    assert again.status_code == 409
    assert audit_rows(db) == before


def test_filters_scope_and_paging(client: httpx.Client, db: Database, clock: FrozenClock) -> None:
    on_error_queue(db, clock, A, 5)
    on_error_queue(db, clock, B, 2)
    admin = bearer(db, clock, None, "root-token")
    for agency in (A, B):
        moved = client.post(
            f"/api/v1/agencies/{agency}/messages/retry", json={}, headers=admin
        ).json()
        assert moved["queued"]

    own = bearer(db, clock, A, "a-only")
    seen = entries(client, own, action="message.retry", limit=1000)
    assert len(seen) == 5
    assert {e["agency_id"] for e in seen} == {A}
    assert client.get("/api/v1/audit", params={"agency": B}, headers=own).status_code == 403

    page = client.get(
        "/api/v1/audit", params={"action": "message.retry", "limit": 3}, headers=admin
    )
    assert page.headers["X-Total-Count"] == "7"
    assert page.headers["X-Has-More"] == "true"
    assert len(page.json()) == 3
    assert 'rel="next"' in page.headers["Link"]
    rest = client.get(
        "/api/v1/audit", params={"action": "message.retry", "limit": 3, "offset": 6}, headers=admin
    )
    assert len(rest.json()) == 1
    assert rest.headers["X-Has-More"] == "false"
    assert 'rel="prev"' in rest.headers["Link"]
    ids = [e["id"] for e in page.json()] + [e["id"] for e in rest.json()]
    assert ids == sorted(ids, reverse=True)  # newest first

    assert (
        client.get("/api/v1/audit", params={"action": "nonsense"}, headers=admin).status_code == 422
    )
    assert client.get("/api/v1/audit", params={"limit": 0}, headers=admin).status_code == 422
    assert client.get("/api/v1/audit").status_code == 401


def test_the_audit_page_is_for_administrators(
    client: httpx.Client, db: Database, clock: FrozenClock
) -> None:
    on_error_queue(db, clock, A, 3)
    assert log_in(client, "anna").status_code in (200, 303)
    post_form(client, "/staff/errors/retry", ids=["1", "2", "3"], next="/staff/errors")
    assert client.get("/staff/audit").status_code == 404
    assert "/staff/audit" not in client.get("/staff").text

    client.cookies.clear()
    assert log_in(client, "root").status_code in (200, 303)
    page = client.get("/staff/audit", params={"action": "message.retry", "limit": 2})
    assert page.status_code == 200
    assert page.text.count('data-action="message.retry"') == 2
    assert "1-2 of 3" in page.text
    assert "anna" in page.text
    assert 'rel="next"' in page.text
    second = client.get("/staff/audit", params={"action": "message.retry", "limit": 2, "offset": 2})
    assert "3-3 of 3" in second.text
    assert 'rel="prev"' in second.text


def _token_id(db: Database, name: str) -> int:
    with db.engine.connect() as conn:
        return conn.execute(
            select(tables.api_tokens.c.id).where(tables.api_tokens.c.name == name)
        ).scalar_one()
