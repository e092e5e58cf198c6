"""POST .../messages with an Idempotency-Key: a retry queues nothing (issue 14, item 7)."""

from __future__ import annotations

import concurrent.futures
from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import func, select

from patronlink.config.schema import AgencySettings
from patronlink.domain.agency import Agency
from patronlink.services.access import create_token
from patronlink.services.demo import load_demo
from patronlink.settings import Settings
from patronlink.storage.database import Database
from patronlink.storage.tables import idempotency_keys, messages
from patronlink.web.app import create_app
from tests.conftest import FrozenClock
from tests.support.live_server import live_server

A, B = "DK-761500", "DK-775100"
BODY = {"to": "52 90 39 91", "text": "Din bog er klar"}


@pytest.fixture
def client(db: Database, settings: Settings, clock: FrozenClock) -> Iterator[httpx.Client]:
    load_demo(db, clock)
    with db.transaction() as repos:
        repos.agencies.upsert(Agency(id=B, name="Aarhus"), AgencySettings(), clock())
    with live_server(create_app(settings, db, clock)) as url, httpx.Client(base_url=url) as c:
        yield c


def token(db: Database, clock: FrozenClock, agency: str | None = None) -> dict[str, str]:
    return {"Authorization": f"Bearer {create_token(db, 'client', agency, clock)}"}


def count(db: Database) -> int:
    with db.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(messages)).scalar_one())


def post(
    client: httpx.Client, headers: dict[str, str], key: str | None, agency: str = A, **body: str
) -> httpx.Response:
    extra = {} if key is None else {"Idempotency-Key": key}
    return client.post(
        f"/api/v1/agencies/{agency}/messages",
        json={**BODY, **body},
        headers={**headers, **extra},
    )


def test_a_retry_with_the_same_key_gets_the_first_message_and_queues_nothing(
    client: httpx.Client, db: Database, clock: FrozenClock
) -> None:
    headers = token(db, clock, A)
    first = post(client, headers, '"8e03978e-40d5-43e8-bc93-6894a57f9324"')
    assert first.status_code == 201, first.text
    assert "Idempotent-Replayed" not in first.headers
    clock.advance(minutes=5)
    # The same key bare (as most clients send it) and the same request in another key order.
    again = client.post(
        f"/api/v1/agencies/{A}/messages",
        json={"text": BODY["text"], "to": BODY["to"]},
        headers={**headers, "Idempotency-Key": "8e03978e-40d5-43e8-bc93-6894a57f9324"},
    )
    assert again.status_code == 201, again.text
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
    assert again.json()["created_at"] == first.json()["created_at"]
    assert count(db) == 1


def test_the_same_key_with_another_request_is_refused(
    client: httpx.Client, db: Database, clock: FrozenClock
) -> None:
    headers = token(db, clock, A)
    first = post(client, headers, "order-17")
    other = post(client, headers, "order-17", text="Another text")
    assert other.status_code == 422
    message = other.json()["error"]
    assert "this Idempotency-Key was used 0 s ago for a different request" in message
    assert f"(message {first.json()['id']})" in message
    assert "a new request needs a new key" in message
    assert count(db) == 1


def test_keys_belong_to_one_token_and_one_agency(
    client: httpx.Client, db: Database, clock: FrozenClock
) -> None:
    mine, yours, everyone = token(db, clock, A), token(db, clock, A), token(db, clock)
    ids = {
        post(client, mine, "k").json()["id"],
        post(client, yours, "k").json()["id"],
        post(client, everyone, "k").json()["id"],
        post(client, everyone, "k", agency=B).json()["id"],
    }
    assert len(ids) == 4
    assert count(db) == 4


def test_a_key_is_forgotten_after_its_lifetime(
    client: httpx.Client, db: Database, clock: FrozenClock
) -> None:
    headers = token(db, clock, A)
    first = post(client, headers, "k").json()["id"]
    clock.advance(hours=23, minutes=59)
    assert post(client, headers, "k").json()["id"] == first
    clock.advance(minutes=2)  # 24 h and a minute after the first
    assert post(client, headers, "k").json()["id"] != first
    assert count(db) == 2
    with db.engine.connect() as conn:
        kept = conn.execute(select(func.count()).select_from(idempotency_keys)).scalar()
    assert kept == 1  # the expired key was dropped


def test_without_a_key_every_request_queues_a_text(
    client: httpx.Client, db: Database, clock: FrozenClock
) -> None:
    headers = token(db, clock, A)
    assert post(client, headers, None).status_code == 201
    assert post(client, headers, None).status_code == 201
    assert count(db) == 2


@pytest.mark.parametrize(
    ("key", "reason"),
    [('""', "is empty"), ('"open', "no closing quote"), ("k" * 256, "longer than 255")],
)
def test_a_malformed_key_is_a_422_that_names_the_header(
    client: httpx.Client, db: Database, clock: FrozenClock, key: str, reason: str
) -> None:
    refused = post(client, token(db, clock, A), key)
    assert refused.status_code == 422
    assert reason in refused.json()["error"]
    assert "Idempotency-Key" in refused.json()["error"]
    assert count(db) == 0


def test_an_invalid_request_with_a_key_leaves_the_key_free(
    client: httpx.Client, db: Database, clock: FrozenClock
) -> None:
    headers = token(db, clock, A)
    assert post(client, headers, "k", to="not a number").status_code == 422
    assert post(client, headers, "k").status_code == 201
    assert count(db) == 1


def test_concurrent_retries_with_one_key_queue_one_text(
    client: httpx.Client, db: Database, clock: FrozenClock
) -> None:
    headers = token(db, clock, A)
    url = str(client.base_url)

    def one(_: int) -> httpx.Response:
        with httpx.Client(base_url=url) as c:
            return post(c, headers, "burst")

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(one, range(8)))
    assert {a.status_code for a in answers} == {201}, [a.text for a in answers]
    assert len({a.json()["id"] for a in answers}) == 1
    assert count(db) == 1
