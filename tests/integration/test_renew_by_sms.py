"""`/rest/{agencyId}/smsgateway`: the spec's examples and every refusal, over real HTTP."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import quote

import httpx
import pytest
from sqlalchemy import func, select

from patronlink.config.schema import AgencyConfig
from patronlink.domain.agency import Agency, Branch, Language
from patronlink.domain.circulation import new_item
from patronlink.domain.patron import PatronStatus, new_patron
from patronlink.services.configure import agency_settings
from patronlink.services.secrets import hash_password
from patronlink.settings import Settings
from patronlink.storage import tables
from patronlink.storage.database import Database
from patronlink.web.app import create_app
from tests.conftest import FrozenClock
from tests.support.live_server import live_server

AGENCY = "DK-761500"
PASSWORD = "MyPassword"  # the spec's example


def setup_library(
    db: Database, clock: FrozenClock, *, enabled: bool = True, language: str = "da"
) -> None:
    config = AgencyConfig.model_validate(
        {
            "id": AGENCY,
            "name": "Horsens",
            "language": language,
            "renewal": {"sms_enabled": enabled, "loan_days": 30, "max_renewals": 2},
        }
    )
    now = clock()
    today = now.date()
    with db.transaction() as repos:
        repos.agencies.upsert(
            Agency(
                id=AGENCY,
                name="Horsens",
                language=Language(config.language),
                branches=(Branch("HOR", "Hoved"),),
            ),
            agency_settings(config),
            now,
        )
        repos.integration_users.set_password_hash(AGENCY, "sms", hash_password(PASSWORD))

        def patron(
            pid: str, name: str, phones: list[str], sms: str | None = None, **kw: object
        ) -> int:
            return repos.patrons.add(
                new_patron(
                    agency_id=AGENCY,
                    country_code="45",
                    patron_id=pid,
                    name=name,
                    phones=phones,
                    sms_number=sms,
                    **kw,
                ),
                now,
            )

        karen = patron("1001", "Karen Jensen", ["52903991"])
        oskar = patron("1002", "Oskar Jensen", [], sms="+45 52 90 39 91")  # her son
        other = patron("1003", "Mette Hansen", ["20112233"])
        blocked = patron("1004", "Bo Blok", ["30405060"], status=PatronStatus.BLOCKED)
        expired = patron(
            "1005", "Eva Udløb", ["30405061"], expiry_date=today - dt.timedelta(days=1)
        )
        items = {}
        for number, title in [
            ("12345678", "Kongens Fald"),
            ("22222222", "Ternet Ninja"),
            ("33333333", "Den lille prins"),
            ("44444444", "Harry Potter"),
            ("55555555", "Bo's bog"),
            ("66666666", "Evas bog"),
        ]:
            items[number] = repos.circulation.add_item(
                new_item(agency_id=AGENCY, item_number=number, title=title)
            )
        due = today + dt.timedelta(days=5)
        repos.circulation.checkout(AGENCY, karen, items["12345678"], now, due)
        repos.circulation.checkout(AGENCY, karen, items["22222222"], now, due)
        maxed = repos.circulation.checkout(AGENCY, oskar, items["33333333"], now, due)
        repos.circulation.renew(maxed, due, 0)
        repos.circulation.renew(maxed, due, 1)  # two renewals: the maximum
        repos.circulation.checkout(AGENCY, oskar, items["44444444"], now, due)
        repos.circulation.checkout(AGENCY, blocked, items["55555555"], now, due)
        repos.circulation.checkout(AGENCY, expired, items["66666666"], now, due)
        repos.circulation.reserve(AGENCY, items["22222222"], other, now)  # someone else waits


def callback_params(text: str, number: str = "52903991", **overrides: str) -> dict[str, str]:
    """The six parameters of a provider's callback, as in the spec's example."""
    return {
        "user": "sms",
        "password": PASSWORD,
        "shortcode": "1910",
        "countrycode": "45",
        "number": number,
        "text": text,
        **overrides,
    }


@dataclass
class Server:
    url: str
    db: Database
    clock: FrozenClock

    def call(self, text: str, number: str = "52903991", **overrides: str) -> httpx.Response:
        params = callback_params(text, number, **overrides)
        return httpx.get(f"{self.url}/rest/{AGENCY}/smsgateway", params=params, timeout=10)

    def replies(self) -> list[tuple[str, str]]:
        with self.db.engine.connect() as conn:
            rows = conn.execute(
                select(tables.messages.c.to_number, tables.messages.c.text).order_by(
                    tables.messages.c.id
                )
            ).all()
        return [(r.to_number, r.text) for r in rows]

    def due_dates(self) -> dict[str, tuple[dt.date, int]]:
        with self.db.engine.connect() as conn:
            rows = conn.execute(
                select(
                    tables.items.c.item_number,
                    tables.loans.c.due_date,
                    tables.loans.c.renewal_count,
                ).join(tables.items, tables.items.c.id == tables.loans.c.item_pk)
            ).all()
        return {r.item_number: (r.due_date, r.renewal_count) for r in rows}

    def log(self) -> list[dict[str, object]]:
        with self.db.engine.connect() as conn:
            return [
                dict(r)
                for r in conn.execute(
                    select(tables.inbound_sms).order_by(tables.inbound_sms.c.id)
                ).mappings()
            ]


@pytest.fixture
def server(db: Database, settings: Settings, clock: FrozenClock) -> Iterator[Server]:
    setup_library(db, clock)
    with live_server(create_app(settings, db, clock)) as url:
        yield Server(url, db, clock)


NEW_DUE = "23.12.2026"  # 2026-11-23 + 30 days


def test_spec_url_example_renews_all_for_parent_and_child(server: Server) -> None:
    # The spec's URL, as a provider sends it (the space in the text percent-encoded).
    response = httpx.get(
        f"{server.url}/rest/{AGENCY}/smsgateway?user=sms&password=MyPassword&shortcode=1910"
        f"&countrycode=45&number=52903991&text={quote('asd forny alle')}"
    )
    assert response.status_code == 200
    assert response.content == b""  # a body would be texted back by some providers
    assert server.replies() == [
        (
            "+4552903991",
            "Fornyelse for Karen Jensen:\n"
            f"Kongens Fald: fornyet til {NEW_DUE}\n"
            "Ternet Ninja: ikke fornyet, reserveret af en anden",
        ),
        (
            "+4552903991",
            "Fornyelse for Oskar Jensen:\n"
            "Den lille prins: ikke fornyet, kan ikke fornyes flere gange\n"
            f"Harry Potter: fornyet til {NEW_DUE}",
        ),
    ]
    dues = server.due_dates()
    assert dues["12345678"] == (dt.date(2026, 12, 23), 1)
    assert dues["22222222"] == (dt.date(2026, 11, 28), 0)  # reserved: unchanged
    assert dues["33333333"][1] == 2
    assert dues["44444444"] == (dt.date(2026, 12, 23), 1)
    log = server.log()[-1]
    assert (log["outcome"], log["command"], log["renewed"], log["refused"]) == (
        "renewed",
        "renew all",
        2,
        2,
    )
    assert log["patrons_matched"] == ["1001", "1002"]


def test_spec_examples_and_mixed_case(server: Server) -> None:
    assert server.call("Horsens forny alle").status_code == 200
    assert len(server.replies()) == 2
    server.clock.advance(seconds=1)
    assert server.call("aah forny 12345678").status_code == 200  # renewed already today: too soon
    assert server.replies()[-1] == (
        "+4552903991",
        "Fornyelse for Karen Jensen:\nKongens Fald: ikke fornyet, for tidligt at forny",
    )
    server.clock.advance(days=10)
    assert server.call("AAH FORNY 12345678").status_code == 200
    assert (
        server.replies()[-1][1]
        == "Fornyelse for Karen Jensen:\nKongens Fald: fornyet til 02.01.2027"
    )


def test_number_in_every_shape_finds_the_same_patrons(server: Server) -> None:
    for shape in ("4552903991", "+4552903991", "004552903991", "52 90 39 91"):
        server.clock.advance(seconds=200)
        assert server.call("x forny 99999999", number=shape).status_code == 200
        assert server.replies()[-1] == ("+4552903991", "99999999 er ikke udlånt til dig.")


@pytest.mark.parametrize(
    ("number", "text"),
    [
        ("30405060", "Fornyelse for Bo Blok:\nBo's bog: ikke fornyet, dit lånerkort er spærret"),
        ("30405061", "Fornyelse for Eva Udløb:\nEvas bog: ikke fornyet, dit lånerkort er udløbet"),
    ],
)
def test_blocked_and_expired_patrons(server: Server, number: str, text: str) -> None:
    assert server.call("bib forny alle", number=number).status_code == 200
    assert server.replies() == [(f"+45{number}", text)]


def test_help_reply_uses_the_patrons_prefix(server: Server) -> None:
    assert server.call("Horsens forny").status_code == 200
    assert server.replies() == [
        (
            "+4552903991",
            'Beskeden blev ikke forstået. Skriv "Horsens forny alle" eller '
            '"Horsens forny <stregkode>".',
        )
    ]
    assert server.log()[-1]["outcome"] == "not_understood"


def test_unknown_number_gets_no_reply_but_is_logged(server: Server) -> None:
    assert server.call("Horsens forny alle", number="99887766").status_code == 200
    assert server.replies() == []
    assert server.log()[-1]["outcome"] == "unknown_number"


def test_webhook_retry_within_120_seconds_is_processed_once(server: Server) -> None:
    assert server.call("Horsens forny alle").status_code == 200
    server.clock.advance(seconds=60)
    assert server.call("Horsens forny alle").status_code == 200
    assert len(server.replies()) == 2
    assert [r["outcome"] for r in server.log()] == ["renewed", "duplicate"]
    server.clock.advance(seconds=121)
    assert server.call("Horsens forny alle").status_code == 200
    assert len(server.replies()) == 4  # processed again: nothing more to renew, both told so


@pytest.mark.parametrize(
    "missing", ["user", "password", "shortcode", "countrycode", "number", "text"]
)
def test_missing_parameter_is_400_naming_it(server: Server, missing: str) -> None:
    params = {
        "user": "sms",
        "password": PASSWORD,
        "shortcode": "1910",
        "countrycode": "45",
        "number": "52903991",
        "text": "a forny alle",
    }
    del params[missing]
    response = httpx.get(f"{server.url}/rest/{AGENCY}/smsgateway", params=params)
    assert response.status_code == 400
    assert missing in response.text
    assert server.replies() == []


def test_hostile_input_is_400_and_writes_nothing(server: Server) -> None:
    base = f"{server.url}/rest/{AGENCY}/smsgateway"
    good = "user=sms&password=MyPassword&shortcode=1&countrycode=45&number=52903991"
    for query in [
        f"{good}&text=a%20forny%20%FF",  # invalid UTF-8
        f"{good}&text=a&text=b",  # repeated
        f"{good}&text=" + "a" * 5000,  # oversized
        f"{good}&text=a%00forny%20alle",  # NUL
    ]:
        assert httpx.get(f"{base}?{query}").status_code == 400, query
    sql = httpx.get(
        base,
        params={
            "user": "sms' OR '1'='1",
            "password": "x' OR 1=1 --",
            "shortcode": "1",
            "countrycode": "45",
            "number": "1",
            "text": "a forny alle",
        },
    )
    assert sql.status_code == 401
    with server.db.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(tables.inbound_sms)).scalar_one() == 0
    assert server.replies() == []


def test_post_form_works_too(server: Server) -> None:
    response = httpx.post(
        f"{server.url}/rest/761500/smsgateway",
        data={
            "user": "sms",
            "password": PASSWORD,
            "shortcode": "1910",
            "countrycode": "45",
            "number": "52903991",
            "text": "Horsens forny alle",
        },
    )
    assert response.status_code == 200
    assert len(server.replies()) == 2


def test_wrong_password_unknown_agency_and_disabled(
    server: Server, db: Database, clock: FrozenClock
) -> None:
    assert server.call("a forny alle", password="wrong-password").status_code == 401
    assert server.call("a forny alle", user="nobody").status_code == 401
    unknown = httpx.get(
        f"{server.url}/rest/DK-000000/smsgateway",
        params={
            "user": "sms",
            "password": PASSWORD,
            "shortcode": "1",
            "countrycode": "45",
            "number": "52903991",
            "text": "a forny alle",
        },
    )
    # Answered as a wrong password, so that nobody learns which agencies exist (issue 13).
    wrong = server.call("a forny alle", password="wrong-password")
    assert (unknown.status_code, unknown.text) == (401, wrong.text)
    with db.transaction() as repos:
        settings = repos.agencies.settings(AGENCY)
        off = settings.model_copy(
            update={"renewal": settings.renewal.model_copy(update={"sms_enabled": False})}
        )
        repos.agencies.upsert(repos.agencies.get(AGENCY), off, clock())  # type: ignore[arg-type]
    assert server.call("a forny alle").status_code == 403
    assert server.replies() == []


def test_repeated_failures_are_throttled(server: Server) -> None:
    statuses = [server.call("a forny alle", password=f"guess-{i}").status_code for i in range(7)]
    assert statuses[:5] == [401] * 5
    assert statuses[5:] == [429, 429]
    assert server.call("a forny alle").status_code == 429  # even the right password, for a while


def test_staff_api_shows_the_inbound_log(server: Server) -> None:
    from patronlink.services.access import create_token

    server.call("Horsens forny alle")
    token = create_token(server.db, "t", AGENCY, server.clock)
    rows = httpx.get(
        f"{server.url}/api/v1/agencies/{AGENCY}/inbound-sms",
        params={"number": "52903991"},
        headers={"Authorization": f"Bearer {token}"},
    ).json()
    assert len(rows) == 1
    assert (rows[0]["number"], rows[0]["outcome"], rows[0]["renewed"]) == (
        "+4552903991",
        "renewed",
        2,
    )
    assert len(rows[0]["replies"]) == 2
    assert "password" not in str(rows[0])


def test_password_change_takes_effect_with_the_next_request(server: Server) -> None:
    assert server.call("a forny alle").status_code == 200  # the password is remembered now
    with server.db.transaction() as repos:
        repos.integration_users.set_password_hash(AGENCY, "sms", hash_password("NewPassword"))
    assert server.call("b forny alle").status_code == 401  # the remembered check is not used
    assert server.call("c forny alle", password="NewPassword").status_code == 200
    with server.db.transaction() as repos:
        repos.integration_users.remove_except(AGENCY, set())
    assert server.call("d forny alle", password="NewPassword").status_code == 401
    assert [row["text"] for row in server.log()] == ["a forny alle", "c forny alle"]


def test_duplicate_check_among_many_texts_from_one_number(server: Server) -> None:
    for i in range(30):
        assert server.call(f"x{i} forny alle").status_code == 200
    assert server.call("x7 forny alle").status_code == 200  # a provider's retry
    assert server.call("x30 forny alle").status_code == 200
    outcomes = [row["outcome"] for row in server.log()]
    assert outcomes[30] == "duplicate"
    assert outcomes[31] != "duplicate"
    assert outcomes[:30].count("duplicate") == 0
