"""Regressions found while fuzzing the staff API (tests/integration/test_openapi_fuzz.py).

Values PostgreSQL cannot take (NUL in text, integers past 64 bits, times that do not fit in UTC)
used to reach the database and come back as 500s; they are 422s naming the field, on both
backends, and nothing is written. What the routes answer is what ``/openapi.json`` says.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from patronlink.services.access import create_token
from patronlink.services.demo import load_demo
from patronlink.settings import Settings
from patronlink.storage.database import Database
from patronlink.web.app import create_app
from tests.conftest import FrozenClock
from tests.support.live_server import live_server
from tests.support.snapshots import row_counts

A = "/api/v1/agencies/DK-761500"
BIG = 2**63
ID32 = 2**31


def text_at(send_at: str) -> dict[str, Any]:
    return {"json": {"to": "52903991", "text": "x", "send_at": send_at}}


CASES: list[tuple[str, str, dict[str, Any], str]] = [
    ("GET", f"{A}/patrons", {"params": {"q": "a\x00b"}}, "q"),
    ("GET", f"{A}/patrons/a%00b/loans", {}, "patron_id"),
    ("GET", f"{A}/patrons/a%00b", {}, "patron_id"),
    ("POST", f"{A}/patrons", {"json": {"patron_id": "x\x00", "name": "n"}}, "patron_id"),
    ("POST", f"{A}/patrons", {"json": {"patron_id": "x", "name": "n", "phones": ["\0"]}}, "phones"),
    ("POST", f"{A}/items", {"json": {"item_number": "x\x00", "title": "t"}}, "item_number"),
    ("POST", f"{A}/loans", {"json": {"patron_id": "1003", "item_number": "\x00"}}, "item_number"),
    ("POST", f"{A}/reservations", {"json": {"patron_id": "\x00", "item_number": "1"}}, "patron_id"),
    ("GET", f"{A}/messages", {"params": {"code": "\x00"}}, "code"),
    ("GET", f"{A}/messages", {"params": {"since": "0001-01-01T00:00:00+14:00"}}, "since"),
    ("GET", f"{A}/messages/{BIG}", {}, "message_id"),
    ("POST", f"{A}/messages/{BIG}/retry", {}, "message_id"),
    ("POST", f"{A}/messages/retry", {"json": {"ids": [BIG]}}, "ids.0"),
    ("POST", f"{A}/messages/retry", {"json": {"code": "\x00"}}, "code"),
    ("POST", f"{A}/messages", text_at("0001-01-01T00:00:00+14:00"), "send_at"),
    ("POST", f"{A}/messages", text_at("9999-12-31T23:59:59-14:00"), "send_at"),
    ("GET", f"{A}/patrons", {"params": {"offset": str(BIG)}}, "offset"),
    ("GET", f"{A}/inbound-sms", {"params": {"number": "\x00"}}, "number"),
    ("GET", "/api/v1/import-sources/x%00/runs", {}, "source_id"),
    ("GET", f"/api/v1/import-sources/x/runs/{BIG}", {}, "run_id"),
    # Loans, reservations and import runs have 32-bit ids on PostgreSQL: 2**31 was a 500 there.
    ("POST", f"{A}/loans/{ID32}/return", {}, "loan_id"),
    ("GET", f"{A}/reservations/{ID32}", {}, "reservation_id"),
    ("POST", f"{A}/reservations/{ID32}/ready", {"json": {}}, "reservation_id"),
    ("POST", f"{A}/reservations/{ID32}/cancel", {}, "reservation_id"),
    ("GET", f"/api/v1/import-sources/x/runs/{ID32}", {}, "run_id"),
]  # fmt: skip


@pytest.fixture
def client(db: Database, settings: Settings, clock: FrozenClock) -> Iterator[httpx.Client]:
    load_demo(db, clock)
    token = create_token(db, "hostile", None, clock)
    with (
        live_server(create_app(settings, db, clock)) as url,
        httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}) as c,
    ):
        yield c


@pytest.mark.parametrize(("method", "path", "request_kw", "field"), CASES)
def test_values_the_database_cannot_hold_are_422(
    client: httpx.Client,
    db: Database,
    method: str,
    path: str,
    request_kw: dict[str, Any],
    field: str,
) -> None:
    before = row_counts(db)
    response = client.request(method, path, **request_kw)
    assert response.status_code == 422, response.text
    assert field in [f["field"] for f in response.json()["fields"]]
    assert row_counts(db) == before


def test_agency_ids_with_nul_are_unknown_agencies(client: httpx.Client) -> None:
    inbound = "user=sms&password=x&shortcode=1910&countrycode=45&number=52903991&text=a+forny+alle"
    response = client.get(f"/rest/DK%00/smsgateway?{inbound}")
    assert response.status_code == 401  # as a wrong password (issue 13: no agency enumeration)
    form = client.get("/rest-dlf/DK%00/patron/")
    assert form.status_code == 200
    assert "<reply-code>0000</reply-code>" not in form.text
