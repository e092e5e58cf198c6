"""The staff JSON API against real SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import func, select

from patronlink.config.schema import AgencySettings
from patronlink.services.access import create_token
from patronlink.services.demo import load_demo
from patronlink.settings import Settings
from patronlink.storage import tables
from patronlink.storage.database import Database
from patronlink.web.app import create_app
from tests.conftest import FrozenClock
from tests.support.live_server import live_server

A = "DK-761500"
B = "DK-775100"


@pytest.fixture
def client(db: Database, settings: Settings, clock: FrozenClock) -> Iterator[httpx.Client]:
    load_demo(db, clock)
    with db.transaction() as repos:
        from patronlink.domain.agency import Agency

        repos.agencies.upsert(Agency(id=B, name="Aarhus"), AgencySettings(), clock())
    public = settings.model_copy(update={"metrics_public": True})  # /metrics without a token
    with live_server(create_app(public, db, clock)) as url, httpx.Client(base_url=url) as c:
        yield c


def auth(db: Database, clock: FrozenClock, agency: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {create_token(db, 'test', agency, clock)}"}


def patron_count(db: Database) -> int:
    with db.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(tables.patrons)).scalar_one()


def test_patron_phone_is_stored_as_e164(
    client: httpx.Client, db: Database, clock: FrozenClock
) -> None:
    headers = auth(db, clock, A)
    response = client.post(
        f"/api/v1/agencies/{A}/patrons",
        json={"patron_id": "4000", "name": "Lise Nielsen", "phones": ["52 90 39 91"]},
        headers=headers,
    )
    assert response.status_code == 201, response.text
    assert response.json()["phones"] == ["+4552903991"]
    fetched = client.get("/api/v1/agencies/761500/patrons/4000", headers=headers)
    assert fetched.status_code == 200
    assert fetched.json()["phones"] == ["+4552903991"]
    with db.engine.connect() as conn:
        numbers = conn.execute(select(tables.patron_phones.c.number)).scalars().all()
    assert "+4552903991" in numbers


def test_duplicate_patron_id_is_409(client: httpx.Client, db: Database, clock: FrozenClock) -> None:
    headers = auth(db, clock, A)
    body = {"patron_id": "4001", "name": "Lise Nielsen"}
    assert (
        client.post(f"/api/v1/agencies/{A}/patrons", json=body, headers=headers).status_code == 201
    )
    before = patron_count(db)
    again = client.post(f"/api/v1/agencies/{A}/patrons", json=body, headers=headers)
    assert again.status_code == 409
    assert "already registered" in again.json()["error"]
    assert patron_count(db) == before


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "No Id"}, "patron_id"),
        ({"patron_id": "1", "name": "x", "phones": ["not a number"]}, "phones[0]"),
        ({"patron_id": "1", "name": "x", "birth_date": "31-12-1999"}, "birth_date"),
        ({"patron_id": "1", "name": "x", "status": "deleted"}, "status"),
        ({"patron_id": "1", "name": "x", "colour": "blue"}, "colour"),
        ({"patron_id": "1", "name": "x" * 201}, "name"),
        ({"patron_id": "1'; DROP TABLE patrons; --", "name": "   "}, "name"),
    ],
)
def test_malformed_body_is_422_naming_the_field(
    client: httpx.Client, db: Database, clock: FrozenClock, body: dict[str, object], field: str
) -> None:
    before = patron_count(db)
    response = client.post(f"/api/v1/agencies/{A}/patrons", json=body, headers=auth(db, clock, A))
    assert response.status_code == 422, response.text
    assert field in [f["field"] for f in response.json()["fields"]]
    assert patron_count(db) == before


def test_invalid_json_and_wrong_types_are_422(
    client: httpx.Client, db: Database, clock: FrozenClock
) -> None:
    headers = {**auth(db, clock, A), "content-type": "application/json"}
    bad_json = client.post(
        f"/api/v1/agencies/{A}/patrons", content=b'{"patron_id": ', headers=headers
    )
    assert bad_json.status_code == 422
    assert "not valid JSON" in bad_json.text
    not_utf8 = client.post(
        f"/api/v1/agencies/{A}/patrons", content=b'{"name": "\xff"}', headers=headers
    )
    assert not_utf8.status_code in (400, 422)
    assert "body" in not_utf8.json()["error"]
    array = client.post(f"/api/v1/agencies/{A}/patrons", json=[1, 2], headers=headers)
    assert array.status_code == 422


def test_oversized_body_is_413(client: httpx.Client, db: Database, clock: FrozenClock) -> None:
    response = client.post(
        f"/api/v1/agencies/{A}/patrons",
        json={"patron_id": "1", "name": "x" * (2 * 1024 * 1024)},
        headers=auth(db, clock, A),
    )
    assert response.status_code == 413


AGENCY_ROUTES = [
    ("POST", "/patrons", {"patron_id": "9", "name": "Intruder"}),
    ("GET", "/patrons", None),
    ("GET", "/patrons/1001", None),
    ("GET", "/patrons/1001/loans", None),
    ("POST", "/items", {"item_number": "777", "title": "x"}),
    ("POST", "/loans", {"patron_id": "1003", "item_number": "5010003"}),
    ("POST", "/reservations", {"patron_id": "1003", "item_number": "5010001"}),
]


@pytest.mark.parametrize(("method", "path", "body"), AGENCY_ROUTES)
def test_token_of_agency_b_cannot_use_agency_a(
    client: httpx.Client,
    db: Database,
    clock: FrozenClock,
    method: str,
    path: str,
    body: dict[str, str] | None,
) -> None:
    headers = auth(db, clock, B)
    for ref in (A, "761500", "DK-000000"):
        response = client.request(
            method, f"/api/v1/agencies/{ref}{path}", json=body, headers=headers
        )
        assert response.status_code in (403, 404), (ref, response.text)
    own = client.request(method, f"/api/v1/agencies/{B}{path}", json=body, headers=headers)
    assert own.status_code not in (401, 403)


def test_missing_and_wrong_tokens_are_401(client: httpx.Client) -> None:
    assert client.get(f"/api/v1/agencies/{A}/patrons").status_code == 401
    wrong = client.get(f"/api/v1/agencies/{A}/patrons", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401


def test_global_token_lists_all_agencies_and_agency_token_one(
    client: httpx.Client, db: Database, clock: FrozenClock
) -> None:
    everyone = client.get("/api/v1/agencies", headers=auth(db, clock, None)).json()
    assert {a["id"] for a in everyone} == {A, B}
    scoped = client.get("/api/v1/agencies", headers=auth(db, clock, B)).json()
    assert [a["id"] for a in scoped] == [B]


def test_checkout_reserve_and_loans(client: httpx.Client, db: Database, clock: FrozenClock) -> None:
    headers = auth(db, clock, A)
    assert (
        client.post(
            f"/api/v1/agencies/{A}/items",
            json={"item_number": "8000", "title": "Ny bog"},
            headers=headers,
        ).status_code
        == 201
    )
    dup = client.post(
        f"/api/v1/agencies/{A}/items", json={"item_number": "8000", "title": "x"}, headers=headers
    )
    assert dup.status_code == 409
    loan = client.post(
        f"/api/v1/agencies/{A}/loans",
        json={"patron_id": "1003", "item_number": "8000"},
        headers=headers,
    )
    assert loan.status_code == 201, loan.text
    assert loan.json()["due_date"] == "2026-12-23"  # 30 days, the agency's loan period
    again = client.post(
        f"/api/v1/agencies/{A}/loans",
        json={"patron_id": "1001", "item_number": "8000"},
        headers=headers,
    )
    assert again.status_code == 409
    missing = client.post(
        f"/api/v1/agencies/{A}/loans",
        json={"patron_id": "nobody", "item_number": "8000"},
        headers=headers,
    )
    assert missing.status_code == 404
    reserve = client.post(
        f"/api/v1/agencies/{A}/reservations",
        json={"patron_id": "1001", "item_number": "8000"},
        headers=headers,
    )
    assert reserve.status_code == 201
    loans = client.get(f"/api/v1/agencies/{A}/patrons/1003/loans", headers=headers).json()
    assert {(x["item_number"], x["title"]) for x in loans} == {
        ("5010005", "Smilla's Sense of Snow"),
        ("8000", "Ny bog"),
    }


def test_search_by_name_id_and_phone(
    client: httpx.Client, db: Database, clock: FrozenClock
) -> None:
    headers = auth(db, clock, A)
    by_name = client.get(f"/api/v1/agencies/{A}/patrons", params={"q": "jensen"}, headers=headers)
    assert [p["patron_id"] for p in by_name.json()] == ["1001", "1002"]
    by_phone = client.get(
        f"/api/v1/agencies/{A}/patrons", params={"q": "52903991"}, headers=headers
    )
    assert [p["patron_id"] for p in by_phone.json()] == ["1001", "1002"]
    wildcard = client.get(f"/api/v1/agencies/{A}/patrons", params={"q": "%"}, headers=headers)
    assert wildcard.json() == []


def test_health_ready_metrics(client: httpx.Client) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json() == {"status": "ready"}
    metrics = client.get("/metrics").text
    assert (
        'patronlink_http_requests_total{method="GET",route="/healthz",status="200"} 1.0' in metrics
    )
