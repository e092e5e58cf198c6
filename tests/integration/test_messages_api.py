"""The staff API for texts and the `patronlink sms` and `worker --once` commands."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import pytest
from click.testing import CliRunner

from patronlink.cli import main
from patronlink.config.schema import AgencySettings
from patronlink.domain.agency import Agency
from patronlink.domain.errors import PermanentGatewayError
from patronlink.services.access import create_token
from patronlink.services.demo import load_demo
from patronlink.settings import Settings
from patronlink.storage.database import Database
from patronlink.web.app import create_app
from patronlink.worker.dispatcher import Dispatcher
from tests.conftest import FrozenClock
from tests.support.fake_gateway import ScriptedGateway
from tests.support.live_server import live_server

A, B = "DK-761500", "DK-775100"


@pytest.fixture
def client(db: Database, settings: Settings, clock: FrozenClock) -> Iterator[httpx.Client]:
    load_demo(db, clock)
    with db.transaction() as repos:
        repos.agencies.upsert(Agency(id=B, name="Aarhus"), AgencySettings(), clock())
    with live_server(create_app(settings, db, clock)) as url, httpx.Client(base_url=url) as c:
        yield c


def auth(db: Database, clock: FrozenClock, agency: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {create_token(db, 'test', agency, clock)}"}


def dispatch(db: Database, clock: FrozenClock, gateway: ScriptedGateway) -> None:
    asyncio.run(Dispatcher(db, clock, gateway.factory).run(once=True))


def test_queue_fail_show_retry_send(client: httpx.Client, db: Database, clock: FrozenClock) -> None:
    headers = auth(db, clock, A)
    created = client.post(
        f"/api/v1/agencies/{A}/messages",
        json={"to": "52 90 39 91", "text": "Din bog er klar"},
        headers=headers,
    )
    assert created.status_code == 201, created.text
    message = created.json()
    assert (message["to"], message["status"], message["encoding"]) == (
        "+4552903991",
        "queued",
        "GSM-7",
    )
    dispatch(
        db,
        clock,
        ScriptedGateway(PermanentGatewayError("Access denied", http_status=403, code="101101")),
    )
    errors = client.get(
        f"/api/v1/agencies/{A}/messages", params={"status": "error"}, headers=headers
    )
    assert [m["id"] for m in errors.json()] == [message["id"]]
    detail = client.get(f"/api/v1/agencies/{A}/messages/{message['id']}", headers=headers).json()
    assert detail["code"] == "101101"
    assert detail["history"][0]["description"] == "Access denied"
    assert detail["history"][0]["http_status"] == 403
    retried = client.post(f"/api/v1/agencies/{A}/messages/{message['id']}/retry", headers=headers)
    assert retried.json()["status"] == "queued"
    again = client.post(f"/api/v1/agencies/{A}/messages/{message['id']}/retry", headers=headers)
    assert again.status_code == 409
    dispatch(db, clock, ScriptedGateway())
    final = client.get(f"/api/v1/agencies/{A}/messages/{message['id']}", headers=headers).json()
    assert final["status"] == "sent"
    assert [h["outcome"] for h in final["history"]] == ["permanent", "sent"]
    cancel = client.post(f"/api/v1/agencies/{A}/messages/{message['id']}/cancel", headers=headers)
    assert cancel.status_code == 409


def test_bulk_retry_by_code(client: httpx.Client, db: Database, clock: FrozenClock) -> None:
    headers = auth(db, clock, A)
    ids = [
        client.post(
            f"/api/v1/agencies/{A}/messages",
            json={"to": "52903991", "text": f"t{i}"},
            headers=headers,
        ).json()["id"]
        for i in range(3)
    ]
    gateway = ScriptedGateway()
    gateway.script.extend(
        [
            PermanentGatewayError("Invalid phone number specified.", code="1002"),
            PermanentGatewayError("Access denied", code="101101"),
            PermanentGatewayError("Invalid phone number specified.", code="1002"),
        ]
    )
    dispatch(db, clock, gateway)
    moved = client.post(
        f"/api/v1/agencies/{A}/messages/retry", json={"code": "1002"}, headers=headers
    )
    assert moved.json() == {"queued": [ids[0], ids[2]]}
    by_number = client.get(
        f"/api/v1/agencies/{A}/messages", params={"to": "+45 52 90 39 91"}, headers=headers
    ).json()
    assert len(by_number) == 3


def test_messages_of_agency_a_are_invisible_to_agency_b(
    client: httpx.Client, db: Database, clock: FrozenClock
) -> None:
    message_id = client.post(
        f"/api/v1/agencies/{A}/messages",
        json={"to": "52903991", "text": "x"},
        headers=auth(db, clock, A),
    ).json()["id"]
    b = auth(db, clock, B)
    for method, path in [
        ("GET", f"/api/v1/agencies/{A}/messages"),
        ("GET", f"/api/v1/agencies/{A}/messages/{message_id}"),
        ("POST", f"/api/v1/agencies/{A}/messages/{message_id}/retry"),
        ("POST", f"/api/v1/agencies/{A}/messages/{message_id}/cancel"),
        ("POST", f"/api/v1/agencies/{A}/messages"),
    ]:
        assert (
            client.request(method, path, headers=b, json={"to": "1", "text": "x"}).status_code
            == 403
        )
    # Through its own agency's path, B cannot reach A's message either.
    assert client.get(f"/api/v1/agencies/{B}/messages/{message_id}", headers=b).status_code == 404
    assert (
        client.post(f"/api/v1/agencies/{B}/messages/{message_id}/cancel", headers=b).status_code
        == 404
    )


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"to": "not a phone", "text": "x"}, "to"),
        ({"to": "52903991", "text": ""}, "text"),
        ({"to": "52903991", "text": "x", "send_at": "tomorrow"}, "send_at"),
        ({"to": "52903991", "text": "x", "send_at": "2026-11-29T08:00:00"}, "send_at"),
        ({"to": "52903991"}, "text"),
    ],
)
def test_bad_message_is_422(
    client: httpx.Client, db: Database, clock: FrozenClock, body: dict[str, str], field: str
) -> None:
    response = client.post(f"/api/v1/agencies/{A}/messages", json=body, headers=auth(db, clock, A))
    assert response.status_code == 422, response.text
    assert field in [f["field"] for f in response.json()["fields"]]
    assert client.get(f"/api/v1/agencies/{A}/messages", headers=auth(db, clock, A)).json() == []


def test_cli_send_worker_list(db: Database, settings: Settings, clock: FrozenClock) -> None:
    load_demo(db, clock)
    runner = CliRunner()
    url = ["--database-url", settings.database_url]
    sent = runner.invoke(
        main,
        [*url, "sms", "send", "--agency", "761500", "--to", "52903991", "--text", "Hej fra CLI"],
    )
    assert sent.exit_code == 0, sent.output
    message_id = int(sent.output.strip())
    bad = runner.invoke(main, [*url, "sms", "send", "--agency", A, "--to", "x", "--text", "t"])
    assert bad.exit_code != 0
    at = runner.invoke(
        main,
        [
            *url,
            "sms",
            "send",
            "--agency",
            A,
            "--to",
            "52903991",
            "--text",
            "t",
            "--at",
            "2026-13-01",
        ],
    )
    assert at.exit_code == 2
    assert "ISO 8601" in at.output
    worker = runner.invoke(main, [*url, "worker", "--once"])
    assert worker.exit_code == 0, worker.output
    assert "sent 1" in worker.output
    listed = runner.invoke(main, [*url, "sms", "list", "--status", "sent", "--json"])
    assert f'"id": {message_id}' in listed.output
    assert '"text": "Hej fra CLI"' in listed.output
    cancel = runner.invoke(main, [*url, "sms", "cancel", str(message_id)])
    assert cancel.exit_code != 0


@pytest.mark.parametrize("number", ["0.5", "1700000000", "-1", "1e9"])
def test_a_bare_number_is_no_time(
    client: httpx.Client, db: Database, clock: FrozenClock, number: str
) -> None:
    """Issue 13, item 7: schemathesis sent ``until=0.5`` and it was read as a Unix time; the
    schema says RFC 3339 (``format: date-time``), so a number is a 422 naming the parameter."""
    headers = auth(db, clock, None)
    for name in ("since", "until"):
        answer = client.get(
            "/api/v1/agencies/DK-761500/messages", params={name: number}, headers=headers
        )
        assert answer.status_code == 422, answer.text
        assert answer.json()["fields"][0]["field"] == name
        assert "RFC 3339" in answer.json()["fields"][0]["message"]
    body = {"until": 0.5}
    retried = client.post("/api/v1/agencies/DK-761500/messages/retry", json=body, headers=headers)
    assert retried.status_code == 422
    good = client.get(
        "/api/v1/agencies/DK-761500/messages",
        params={"until": "2026-11-30T12:00:00+01:00"},
        headers=headers,
    )
    assert good.status_code == 200
