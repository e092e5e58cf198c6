"""One agency's token never reaches another agency's data, on every staff route.

The routes are read from the app, so a new route under ``/api/v1/agencies/{agency_id}/`` or
``/api/v1/import-sources/`` fails ``test_every_scoped_route_is_covered`` until it is added to
``CALLS``. Each call is made with agency A's token on agency B's resources, twice: with B in the
path (refused: 403 or 404), and, where the route takes a resource id, with A in the path and B's
id (404: the id does not exist for A). Nothing may change in any table, and no answer may
contain anything of B's.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from patronlink.config.schema import AgencySettings, ImportSourceConfig
from patronlink.domain.agency import Agency
from patronlink.domain.dispatch import Outcome
from patronlink.domain.import_runs import Trigger
from patronlink.domain.outbox import MessageStatus
from patronlink.services.access import create_token
from patronlink.services.circulation import add_item, checkout, reserve
from patronlink.services.demo import load_demo
from patronlink.services.import_patrons import start_run
from patronlink.services.outbox import queue_sms
from patronlink.services.patrons import PatronInput, create_patron
from patronlink.settings import Settings
from patronlink.storage.database import Database
from patronlink.web.app import create_app
from tests.conftest import FrozenClock
from tests.support.live_server import live_server
from tests.support.snapshots import contents_digest

A, B = "DK-761500", "DK-775100"
SCOPED_PREFIXES = ("/api/v1/agencies/{agency_id}/", "/api/v1/import-sources/")
# Strings only B's rows hold: no answer to A's token may contain one.
# (Ids that A's own request named may be echoed in a 404; they are not B's data.)
B_MARKERS = ("Bodil Bsecret", "B-only text", "B's book", "Aarhus")


@dataclass(frozen=True)
class BResources:
    patron_id: str
    message_id: int
    source_id: str
    run_id: int
    loan_id: int
    reservation_id: int


# (method, route template) -> (path parameters from B's resources, JSON body or None)
CALLS: dict[tuple[str, str], tuple[dict[str, str], Any]] = {
    ("GET", "/api/v1/agencies/{agency_id}/patrons"): ({}, None),
    ("POST", "/api/v1/agencies/{agency_id}/patrons"): ({}, {"patron_id": "42", "name": "Eve"}),
    ("GET", "/api/v1/agencies/{agency_id}/patrons/{patron_id}"): ({"patron_id": "p"}, None),
    ("GET", "/api/v1/agencies/{agency_id}/patrons/{patron_id}/loans"): ({"patron_id": "p"}, None),
    ("POST", "/api/v1/agencies/{agency_id}/items"): ({}, {"item_number": "42", "title": "x"}),
    ("POST", "/api/v1/agencies/{agency_id}/loans"): (
        {},
        {"patron_id": "9990001", "item_number": "9990002"},
    ),
    ("POST", "/api/v1/agencies/{agency_id}/reservations"): (
        {},
        {"patron_id": "9990001", "item_number": "9990002"},
    ),
    ("POST", "/api/v1/agencies/{agency_id}/messages"): ({}, {"to": "52903991", "text": "hi"}),
    ("GET", "/api/v1/agencies/{agency_id}/messages"): ({}, None),
    ("GET", "/api/v1/agencies/{agency_id}/messages/{message_id}"): ({"message_id": "m"}, None),
    ("POST", "/api/v1/agencies/{agency_id}/messages/{message_id}/retry"): (
        {"message_id": "m"},
        None,
    ),
    ("POST", "/api/v1/agencies/{agency_id}/messages/{message_id}/cancel"): (
        {"message_id": "m"},
        None,
    ),
    ("POST", "/api/v1/agencies/{agency_id}/messages/retry"): ({}, {"ids": ["m"]}),
    ("GET", "/api/v1/agencies/{agency_id}/inbound-sms"): ({}, None),
    ("POST", "/api/v1/import-sources/{source_id}/runs"): ({"source_id": "s"}, None),
    ("GET", "/api/v1/import-sources/{source_id}/runs"): ({"source_id": "s"}, None),
    ("GET", "/api/v1/import-sources/{source_id}/runs/{run_id}"): (
        {"source_id": "s", "run_id": "r"},
        None,
    ),
    # issue 18: patrons through their life, and circulation
    ("PATCH", "/api/v1/agencies/{agency_id}/patrons/{patron_id}"): (
        {"patron_id": "p"},
        {"email": "eve@example.org"},
    ),
    **{
        ("POST", f"/api/v1/agencies/{{agency_id}}/patrons/{{patron_id}}/{action}"): (
            {"patron_id": "p"},
            {"reason": "eve"} if action == "block" else None,
        )
        for action in ("approve", "reject", "block", "unblock", "deactivate", "anonymise")
    },
    ("POST", "/api/v1/agencies/{agency_id}/loans/{loan_id}/return"): ({"loan_id": "l"}, None),
    ("GET", "/api/v1/agencies/{agency_id}/reservations/{reservation_id}"): (
        {"reservation_id": "v"},
        None,
    ),
    ("POST", "/api/v1/agencies/{agency_id}/reservations/{reservation_id}/ready"): (
        {"reservation_id": "v"},
        {"pickup_branch": "HOR"},
    ),
    ("POST", "/api/v1/agencies/{agency_id}/reservations/{reservation_id}/cancel"): (
        {"reservation_id": "v"},
        None,
    ),
}


def scoped_routes() -> set[tuple[str, str]]:
    """The app's routes, read from its OpenAPI description.

    FastAPI includes routers lazily (``app.routes`` holds the routers, not their routes); the
    description is the public list of every route and method. The staff API is documented
    whole (the fuzz test depends on that too), so none is hidden from it.
    """
    app = create_app(Settings(database_url="sqlite://"), None)  # type: ignore[arg-type]
    return {
        (method.upper(), path)
        for path, operations in app.openapi()["paths"].items()
        if path.startswith(SCOPED_PREFIXES)
        for method in operations
    }


def test_every_scoped_route_is_covered() -> None:
    assert scoped_routes() == set(CALLS)


def make_b(db: Database, clock: FrozenClock) -> BResources:
    """Agency B with a patron, an item on loan, a text on the error queue, a source and a run."""
    with db.transaction() as repos:
        repos.agencies.upsert(Agency(id=B, name="Aarhus"), AgencySettings(), clock())
        source = ImportSourceConfig.model_validate(
            {"id": "b-source", "agency": B, "url": "https://example.org/b.json"}
            | {"format": "folio-json"}
        )
        repos.import_sources.upsert(
            "b-source", B, source.model_dump(mode="json", exclude={"id", "agency"}), clock()
        )
    create_patron(db, B, PatronInput(patron_id="9990001", name="Bodil Bsecret"), clock)
    add_item(db, B, "9990002", "B's book")
    loan = checkout(db, B, "9990001", "9990002", None, clock)
    reservation = reserve(db, B, "9990001", "9990002", clock)
    assert loan.id is not None
    assert reservation.id is not None
    message_id = queue_sms(db, B, "52903991", "B-only text", clock)
    with db.transaction() as repos:
        repos.outbox.claim(clock(), clock() + dt.timedelta(minutes=5), "test", 10)
    _fail(db, message_id, clock)
    run_id = start_run(db, "b-source", Trigger.STAFF, clock)
    assert run_id is not None
    return BResources("9990001", message_id, "b-source", run_id, loan.id, reservation.id)


def _fail(db: Database, message_id: int, clock: FrozenClock) -> None:
    """Put B's text on the error queue, so that retry and cancel would have work to do."""
    outcome = Outcome(
        message_id=message_id,
        status=MessageStatus.ERROR,
        started_at=clock(),
        finished_at=clock(),
        driver="console",
        attempt_outcome="permanent",
        description="refused",
    )
    with db.transaction() as repos:
        assert repos.outbox.record([outcome], "test") == 1


@pytest.fixture
def world(
    db: Database, settings: Settings, clock: FrozenClock
) -> Iterator[tuple[httpx.Client, BResources]]:
    load_demo(db, clock)
    b = make_b(db, clock)
    token = create_token(db, "agency A", A, clock)
    with (
        live_server(create_app(settings, db, clock)) as url,
        httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}) as client,
    ):
        # The token's first use records its last-used time (then not again within the minute,
        # and the clock is frozen): done here, before any test compares the tables.
        assert client.get("/api/v1/agencies").status_code == 200
        yield client, b


def _path(template: str, agency: str, params: dict[str, str], b: BResources) -> str:
    values = {
        "m": str(b.message_id),
        "p": b.patron_id,
        "s": b.source_id,
        "r": str(b.run_id),
        "l": str(b.loan_id),
        "v": str(b.reservation_id),
    }
    filled = {name: values[key] for name, key in params.items()}
    return template.format(agency_id=agency, **filled)


def _body(body: Any, b: BResources) -> Any:
    if isinstance(body, dict) and body.get("ids") == ["m"]:
        return {"ids": [b.message_id]}
    return body


@pytest.mark.parametrize(("method", "template"), sorted(CALLS))
def test_agency_a_cannot_touch_agency_b(
    world: tuple[httpx.Client, BResources],
    db: Database,
    method: str,
    template: str,
) -> None:
    client, b = world
    params, body = CALLS[(method, template)]
    before = contents_digest(db)
    attempts = [(B, 403, 404)]
    if params and template.startswith("/api/v1/agencies/"):
        attempts.append((A, 404, 404))  # A's path, B's resource: it does not exist for A
    for agency, *refused in attempts:
        path = _path(template, agency, params, b)
        response = client.request(method, path, json=_body(body, b))
        assert response.status_code in refused, (path, response.status_code, response.text)
        assert not any(marker in response.text for marker in B_MARKERS), response.text
        assert contents_digest(db) == before, path
    for bare in ("775100", "dk-775100"):  # B by its bare number and in lower case
        if template.startswith("/api/v1/agencies/"):
            path = _path(template, bare, params, b)
            response = client.request(method, path, json=_body(body, b))
            assert response.status_code in (403, 404), (path, response.text)
            assert contents_digest(db) == before, path


@pytest.mark.parametrize("path", ["/patrons", "/messages", "/inbound-sms", "/patrons/1001/loans"])
def test_lists_of_agency_a_hold_nothing_of_b(
    world: tuple[httpx.Client, BResources], path: str
) -> None:
    client, _b = world
    response = client.get(f"/api/v1/agencies/{A}{path}", params={"limit": 500})
    assert response.status_code == 200, response.text
    assert not any(marker in response.text for marker in B_MARKERS)
    agencies = client.get("/api/v1/agencies").json()
    assert [a["id"] for a in agencies] == [A]
