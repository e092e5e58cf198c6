"""Circulation the API lacked (issue 18, item 2): return a loan; a reservation waiting, ready
at a pickup branch until a deadline, collected or expired; cancelled."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import select

from patronlink.services.access import create_token
from patronlink.services.circulation import expire_uncollected_reservations
from patronlink.services.demo import DEMO_INBOUND_PASSWORD, DEMO_INBOUND_USER, load_demo
from patronlink.settings import Settings
from patronlink.storage import tables
from patronlink.storage.database import Database
from patronlink.web.app import create_app
from tests.conftest import FrozenClock
from tests.support.live_server import live_server
from tests.support.scheduler import one_scheduler_round

A = "DK-761500"
BASE = f"/api/v1/agencies/{A}"


@pytest.fixture
def client(db: Database, settings: Settings, clock: FrozenClock) -> Iterator[httpx.Client]:
    load_demo(db, clock)
    token = create_token(db, "desk", A, clock)
    with (
        live_server(create_app(settings, db, clock)) as url,
        httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}) as c,
    ):
        yield c


def karen_renews(client: httpx.Client, db: Database) -> int:
    """Karen texts "forny alle"; how many of her loans were renewed."""
    response = client.get(
        f"/rest/{A}/smsgateway",
        params={
            "user": DEMO_INBOUND_USER,
            "password": DEMO_INBOUND_PASSWORD,
            "shortcode": "1910",
            "countrycode": "45",
            "number": "52903991",
            "text": "asd forny alle",
        },
    )
    assert response.status_code == 200
    with db.engine.connect() as conn:
        return int(
            conn.execute(
                select(tables.inbound_sms.c.renewed).order_by(tables.inbound_sms.c.id.desc())
            )
            .scalars()
            .first()
            or 0
        )


def test_return_a_loan(client: httpx.Client) -> None:
    loans = client.get(f"{BASE}/patrons/1003/loans").json()
    assert len(loans) == 1
    returned = client.post(f"{BASE}/loans/{loans[0]['id']}/return")
    assert returned.status_code == 200, returned.text
    assert returned.json()["returned_at"] is not None
    assert client.get(f"{BASE}/patrons/1003/loans").json() == []
    assert client.post(f"{BASE}/loans/{loans[0]['id']}/return").status_code == 409
    assert client.post(f"{BASE}/loans/999999/return").status_code == 404


def test_reservation_waiting_ready_collected(
    client: httpx.Client, db: Database, clock: FrozenClock
) -> None:
    # Mette reserves Karen's "Kongens Fald": Karen's renewal of it is refused while it holds.
    made = client.post(f"{BASE}/reservations", json={"patron_id": "1003", "item_number": "5010001"})
    assert made.status_code == 201, made.text
    rid = made.json()["id"]
    assert client.get(f"{BASE}/reservations/{rid}").json()["status"] == "waiting"

    bad_branch = client.post(f"{BASE}/reservations/{rid}/ready", json={"pickup_branch": "XYZ"})
    assert bad_branch.status_code == 422
    karen = client.get(f"{BASE}/patrons/1001/loans").json()
    loan = next(x for x in karen if x["item_number"] == "5010001")
    assert client.post(f"{BASE}/loans/{loan['id']}/return").is_success
    ready = client.post(f"{BASE}/reservations/{rid}/ready", json={"pickup_branch": "HOR"})
    assert ready.status_code == 200, ready.text
    body = ready.json()
    assert (body["status"], body["pickup_branch"], body["pickup_deadline"]) == (
        "ready",
        "HOR",
        "2026-11-30",  # a week after the frozen clock's 2026-11-23
    )
    assert (
        client.post(f"{BASE}/reservations/{rid}/ready", json={"pickup_branch": "HOR"}).status_code
        == 409
    )

    # Mette collects it: the checkout fulfils the reservation.
    out = client.post(f"{BASE}/loans", json={"patron_id": "1003", "item_number": "5010001"})
    assert out.status_code == 201, out.text
    assert client.get(f"{BASE}/reservations/{rid}").json()["status"] == "collected"
    assert client.post(f"{BASE}/reservations/{rid}/cancel").status_code == 409


def test_ready_past_its_deadline_is_expired(client: httpx.Client, clock: FrozenClock) -> None:
    rid = client.post(
        f"{BASE}/reservations", json={"patron_id": "1003", "item_number": "5010003"}
    ).json()["id"]
    client.post(
        f"{BASE}/reservations/{rid}/ready",
        json={"pickup_branch": "HOR", "pickup_deadline": "2026-11-25"},
    )
    assert client.get(f"{BASE}/reservations/{rid}").json()["status"] == "ready"
    clock.advance(days=3)
    assert client.get(f"{BASE}/reservations/{rid}").json()["status"] == "expired"


def test_the_worker_expires_a_reservation_not_collected(
    client: httpx.Client, db: Database, clock: FrozenClock
) -> None:
    # Mette reserves Karen's "Kongens Fald"; Karen returns it; it waits for Mette until 25 Nov.
    rid = client.post(
        f"{BASE}/reservations", json={"patron_id": "1003", "item_number": "5010001"}
    ).json()["id"]
    karen = client.get(f"{BASE}/patrons/1001/loans").json()
    loan = next(x for x in karen if x["item_number"] == "5010001")
    assert client.post(f"{BASE}/loans/{loan['id']}/return").is_success
    ready = client.post(
        f"{BASE}/reservations/{rid}/ready",
        json={"pickup_branch": "HOR", "pickup_deadline": "2026-11-25"},
    )
    assert ready.status_code == 200, ready.text
    other = client.post(
        f"{BASE}/reservations", json={"patron_id": "1003", "item_number": "5010003"}
    ).json()["id"]

    def stored(reservation_id: int) -> str:
        with db.engine.connect() as conn:
            return str(
                conn.execute(
                    select(tables.reservations.c.status).where(
                        tables.reservations.c.id == reservation_id
                    )
                ).scalar_one()
            )

    # On the deadline day itself the reservation still holds: reserving it again is refused.
    clock.advance(days=2)
    refused = client.post(
        f"{BASE}/reservations", json={"patron_id": "1003", "item_number": "5010001"}
    )
    assert refused.status_code == 409, refused.text
    assert expire_uncollected_reservations(db, clock) == {}
    assert stored(rid) == "ready"

    # The day after, the worker's hourly round expires it (the waiting one is left alone) ...
    clock.advance(days=1)
    one_scheduler_round(db, clock)
    assert (stored(rid), stored(other)) == ("expired", "waiting")
    assert client.get(f"{BASE}/reservations/{rid}").json()["status"] == "expired"
    assert expire_uncollected_reservations(db, clock) == {}  # once only
    # ... and it no longer holds the item: Mette, who did not come, may reserve it anew.
    again = client.post(
        f"{BASE}/reservations", json={"patron_id": "1003", "item_number": "5010001"}
    )
    assert again.status_code == 201, again.text
    assert client.get(f"{BASE}/reservations/{again.json()['id']}").json()["status"] == "waiting"


def test_a_cancelled_reservation_no_longer_blocks_renewal(
    client: httpx.Client, db: Database, clock: FrozenClock
) -> None:
    rid = client.post(
        f"{BASE}/reservations", json={"patron_id": "1003", "item_number": "5010001"}
    ).json()["id"]
    karen_renews(client, db)
    assert "Kongens Fald: ikke fornyet, reserveret af en anden" in last_reply_to_karen(db)
    clock.advance(minutes=5)  # past the duplicate window of renewal by SMS
    assert client.post(f"{BASE}/reservations/{rid}/cancel").status_code == 204
    assert client.get(f"{BASE}/reservations/{rid}").status_code == 404
    karen_renews(client, db)
    assert "Kongens Fald: fornyet til" in last_reply_to_karen(db)


def last_reply_to_karen(db: Database) -> str:
    with db.engine.connect() as conn:
        return str(
            conn.execute(
                select(tables.messages.c.text)
                .where(tables.messages.c.text.like("Fornyelse for Karen%"))
                .order_by(tables.messages.c.id.desc())
            )
            .scalars()
            .first()
        )
