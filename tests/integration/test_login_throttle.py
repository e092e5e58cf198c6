"""Issue 13, item 1: throttles that hold under parallel attack, over real HTTP on both backends.

Each burst is sent from many threads at once, as the attacker did. The limits count an attempt
before its credentials are checked, so a burst gets exactly ``limit`` wrong answers and the rest
429, and a correct password from another address (127.0.0.2: all of 127/8 is this machine's
loopback) still gets in.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from patronlink.config.loader import load_config
from patronlink.services.configure import apply_config
from patronlink.services.throttle import Policy, Refused, Throttle, Ticket
from patronlink.settings import Settings
from patronlink.storage.database import Database
from patronlink.storage.engine import make_engine
from patronlink.web.app import create_app
from tests.conftest import FrozenClock
from tests.integration.test_renew_by_sms import AGENCY, callback_params, setup_library
from tests.support.live_server import live_server
from tests.support.staff_site import PASSWORD as STAFF_PASSWORD
from tests.support.staff_site import add_users, configure, csrf_of

FIXTURES = Path(__file__).parent.parent / "fixtures"
BURST = 30
OTHER_ADDRESS = "127.0.0.2"


def burst(call: Callable[[int], int], n: int = BURST) -> list[int]:
    with ThreadPoolExecutor(max_workers=n) as pool:
        return sorted(pool.map(call, range(n)))


def client_from(url: str, address: str = "127.0.0.1") -> httpx.Client:
    transport = httpx.HTTPTransport(local_address=address)
    return httpx.Client(base_url=url, transport=transport, timeout=30)


# --- staff login ---------------------------------------------------------------------------------


@pytest.fixture
def staff_url(
    db: Database, settings: Settings, clock: FrozenClock, tmp_path: Path
) -> Iterator[str]:
    configure(db, clock, tmp_path)
    add_users(db, clock)
    with live_server(create_app(settings, db, clock)) as url:
        yield url


def staff_login(url: str, username: str, password: str, address: str = "127.0.0.1") -> int:
    with client_from(url, address) as c:
        form = c.get("/staff/login")
        answer = c.post(
            "/staff/login",
            data={"username": username, "password": password, "csrf_token": csrf_of(form)},
        )
        return answer.status_code


def test_parallel_wrong_staff_logins_meet_the_limit(staff_url: str) -> None:
    statuses = burst(lambda i: staff_login(staff_url, "anna", f"guess {i}"))
    assert statuses.count(401) == 5  # staff_login_failures_before_throttle
    assert statuses.count(429) == BURST - 5
    # The attacker's address stays blocked, even with the right password ...
    assert staff_login(staff_url, "anna", STAFF_PASSWORD) == 429
    # ... but the user, at an address that was not throttled, gets in.
    assert staff_login(staff_url, "anna", STAFF_PASSWORD, OTHER_ADDRESS) == 303


def test_a_throttled_login_says_when_to_come_back(staff_url: str) -> None:
    for i in range(5):
        assert staff_login(staff_url, "bo", f"guess {i}") == 401
    with client_from(staff_url) as c:
        form = c.get("/staff/login")
        refused = c.post(
            "/staff/login",
            data={"username": "bo", "password": "x", "csrf_token": csrf_of(form)},
        )
    assert refused.status_code == 429
    assert refused.headers["retry-after"] == "300"  # staff_login_throttle_seconds


# --- the inbound SMS callback --------------------------------------------------------------------


@pytest.fixture
def inbound_url(db: Database, settings: Settings, clock: FrozenClock) -> Iterator[str]:
    setup_library(db, clock)
    with live_server(create_app(settings, db, clock)) as url:
        yield url


def inbound(url: str, address: str = "127.0.0.1", agency: str = AGENCY, **overrides: str) -> int:
    with client_from(url, address) as c:
        params = callback_params("Horsens forny alle", **overrides)
        return c.get(f"/rest/{agency}/smsgateway", params=params).status_code


def test_parallel_wrong_inbound_passwords_meet_the_limit(inbound_url: str) -> None:
    statuses = burst(lambda i: inbound(inbound_url, password=f"guess-{i}"), 40)
    assert statuses.count(401) == 5  # inbound_failures_before_throttle
    assert statuses.count(429) == 35
    assert inbound(inbound_url) == 429  # the right password from the attacker's address
    assert inbound(inbound_url, OTHER_ADDRESS) == 200


def test_a_burst_of_good_callbacks_is_not_throttled(inbound_url: str) -> None:
    """Only guesses are counted: a provider that sends many good callbacks at once (after one
    that verified the password) gets 200 for each, and a blocked address still gets 429."""
    assert inbound(inbound_url) == 200
    statuses = burst(lambda i: inbound(inbound_url, number=f"4000{i:04d}"), 40)
    assert statuses == [200] * 40
    for i in range(5):
        assert inbound(inbound_url, password=f"guess-{i}") == 401
    assert inbound(inbound_url) == 429


def test_two_servers_on_one_database_share_the_count(
    db: Database, settings: Settings, clock: FrozenClock
) -> None:
    """Two apps with engines of their own stand for two `serve` processes on one database."""
    setup_library(db, clock)
    second_db = Database(make_engine(settings))
    try:
        with (
            live_server(create_app(settings, db, clock)) as one,
            live_server(create_app(settings, second_db, clock)) as two,
        ):
            statuses = burst(lambda i: inbound(one if i % 2 else two, password=f"guess-{i}"), 40)
    finally:
        second_db.dispose()
    assert statuses.count(401) == 5
    assert statuses.count(429) == 35


# --- self-registration (anonymous: per address) ---------------------------------------------------


def test_parallel_refused_registrations_meet_the_limit(
    db: Database, settings: Settings, clock: FrozenClock
) -> None:
    apply_config(db, load_config(FIXTURES / "registration_spec_form.toml", {}), {}, clock)
    bad = b"post_xml=<not-a-patron/>"
    ten = settings.model_copy(update={"registration_failures_before_throttle": 10})
    with live_server(create_app(ten, db, clock)) as url:

        def put(_i: int) -> int:
            with client_from(url) as c:
                return c.put("/rest-dlf/patron/", content=bad).status_code

        statuses = burst(put)
        assert statuses.count(200) == 10  # each a refusal in XML, as Aleph clients read them
        assert statuses.count(429) == BURST - 10
        with client_from(url) as c:
            refused = c.put("/rest-dlf/patron/", content=bad)
        assert "<reply-code>0901</reply-code>" in refused.text
        assert int(refused.headers["retry-after"]) > 0
        # Another address registers as before.
        with client_from(url, OTHER_ADDRESS) as c:
            spec = (FIXTURES / "aleph_put_body.txt").read_bytes()
            assert "<reply-code>0000</reply-code>" in c.put("/rest-dlf/patron/", content=spec).text


# --- the component itself ----------------------------------------------------------------------


def test_the_per_user_limit_spares_an_address_the_user_logged_in_from(
    db: Database, clock: FrozenClock
) -> None:
    policy = Policy.of("test", 2, 60)  # per user (and per address): 8
    throttle = Throttle(db, clock, policy)
    home = throttle.reserve("anna", "10.0.0.1")
    assert isinstance(home, Ticket)
    throttle.settle(home, succeeded=True)
    # Guessing from many addresses, two at each: the per-user limit stops it after eight.
    verdicts = []
    for i in range(10):
        for _ in range(2):
            verdicts.append(throttle.reserve("anna", f"10.9.0.{i}"))
    refused = [v for v in verdicts if isinstance(v, Refused)]
    assert len(verdicts) - len(refused) == 8
    # A new address is refused for that user ...
    assert isinstance(throttle.reserve("anna", "10.8.0.1"), Refused)
    # ... but her usual one is not, and other users are not touched.
    ticket = throttle.reserve("Anna", "10.0.0.1")
    assert isinstance(ticket, Ticket)
    assert isinstance(throttle.reserve("bo", "10.8.0.1"), Ticket)
    clock.advance(hours=2)
    assert isinstance(throttle.reserve("anna", "10.8.0.1"), Ticket)


def test_reservations_are_atomic_across_engines_and_threads(
    db: Database, settings: Settings, clock: FrozenClock
) -> None:
    engines = [db, Database(make_engine(settings)), Database(make_engine(settings))]
    throttles = [Throttle(d, clock, Policy.of("test", 7, 60)) for d in engines]
    try:
        verdicts = burst(
            lambda i: 0 if isinstance(throttles[i % 3].reserve("u", "10.0.0.1"), Ticket) else 1,
            60,
        )
    finally:
        for d in engines[1:]:
            d.dispose()
    assert verdicts.count(0) == 7


def test_quiet_keys_are_purged(db: Database, clock: FrozenClock) -> None:
    from sqlalchemy import func, select

    from patronlink.services import throttle as throttle_module
    from patronlink.storage.tables import auth_throttle

    throttle = Throttle(db, clock, Policy.of("test", 5, 60, max_block=dt.timedelta(minutes=2)))
    for i in range(throttle_module.PURGE_EVERY - 1):
        throttle.reserve(None, f"10.1.{i // 250}.{i % 250}")
    clock.advance(minutes=10)
    throttle.reserve(None, "10.2.0.1")  # the 500th: purges what was quiet for two minutes
    with db.engine.connect() as conn:
        left = conn.execute(select(func.count()).select_from(auth_throttle)).scalar_one()
    assert left == 1
