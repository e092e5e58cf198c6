"""Provider callbacks over real HTTP, on both backends: delivery reports and inbound texts.

Every report and inbound shape is first tried with the provider's published example verbatim
(LINK Mobility "SMS REST API - MT and Delivery Reports" 1.18 and "SMS REST API - MO" 1.7;
GatewayAPI's REST docs, "Webhooks", including their signed example token), then with duplicates,
out-of-order reports, unknown ids, bad credentials and garbage.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import warnings
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
import jwt
import pytest
from jwt.warnings import InsecureKeyLengthWarning
from sqlalchemy import select, update

from patronlink.domain.delivery import kannel_signature
from patronlink.domain.dispatch import Outcome
from patronlink.domain.outbox import MessageStatus
from patronlink.settings import Settings
from patronlink.storage import tables
from patronlink.storage.database import Database
from patronlink.storage.outbox import NewMessage
from patronlink.web.app import create_app
from tests.conftest import FrozenClock
from tests.integration.test_renew_by_sms import AGENCY, PASSWORD, setup_library
from tests.support.live_server import live_server

KANNEL_PASSWORD = "kannel pass&word"
WEBHOOK_SECRET = "secret"  # the secret of GatewayAPI's published example token

# LINK Mobility MT/DLR 1.18, "Delivery Report Example": both examples, verbatim.
LINK_DELIVERED = """{
  "refId": "0",
  "id": "0",
  "operator": "no.telenor",
  "sentTimestamp": "2015-11-19T09:37:35Z",
  "timestamp": "2015-11-19T09:37:00Z",
  "resultCode": 1001,
  "operatorResultCode": "2",
  "segments": 1,
  "gateCustomParameters": {},
  "customParameters": {
    "received": "2015-11-19 10:37:36"
  }
}"""
LINK_NUMBER_ERROR = """{
  "refId": "0",
  "id": "0",
  "operator": null,
  "sentTimestamp": "2015-11-19T10:17:37Z",
  "timestamp": "2015-11-19T10:17:37Z",
  "resultCode": 2106,
  "operatorResultCode": null,
  "segments": 1,
  "gateCustomParameters": {},
  "customParameters": {
    "received": "2015-11-19 11:17:37"
  }
}"""
# LINK Mobility MO 1.7, "Example sent to a keyword", verbatim.
LINK_MO = """{
  "destination": "NO-2333",
  "subNumber": null,
  "source": "+4741560067",
  "content": {
    "type": "SMS",
    "userData": "Bclt hello",
    "encoding": "TEXT"
  },
  "operator": "no.telenor",
  "timestamp": "2015-11-17T14:28:40Z",
  "messageId": "0",
  "operatorTimestamp": "2015-11-17T14:28:40Z",
  "operatorMessageId": "0",
  "route": {
    "type": "KEYWORD_ROUTE",
    "id": "0",
    "refId": "Internal Keyword Reference",
    "gateIds": [
      "0"
    ],
    "platformId": "0",
    "platformPartnerId": "0",
    "platformServiceType": "serviceType",
    "platformServiceId": "Internal Service ID",
    "customParameters": {},
    "number": "NO-2333",
    "keyword": "BCLT",
    "keywordType": "FIRST_WORD",
    "active": true,
    "start": "2015-11-17T00:00:00Z",
    "end": "2016-11-17T00:00:00Z",
    "shared": false,
    "description": "BCLT service"
  },
  "gateCustomParameters": {},
  "customParameters": {
    "platformPartnerId": "0",
    "suggestedOperator": "no.telenor",
    "moReferenceId": "0",
    "queued": "2015-11-17 15:28:40",
    "serviceCentreTimeStamp": "20151117152840",
    "platformId": "0"
  }
}"""
# GatewayAPI REST docs, "Webhooks": the status callback and the MO SMS examples, verbatim.
GWAPI_DLR = """{
    "id": 1000001,
    "msisdn": 4587654321,
    "time": 1450000000,
    "status": "DELIVERED",
    "userref": "foobar",
    "charge_status": "CAPTURED",
    "country_code": "DK",
    "country_prefix": 45
}"""
GWAPI_MO = """{
    "id": 1000001,
    "msisdn": 4587654321,
    "receiver": 451204,
    "message": "foo Hello World",
    "senttime": 1450000000,
    "webhook_label": "test",
    "country_code": "DK",
    "country_prefix": 45
}"""
# GatewayAPI REST docs, "Authentication token": the example X-Gwapi-Signature, signed with
# "secret" (a DELIVERED report, userref null).
GWAPI_EXAMPLE_TOKEN = (
    "eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzI1NiJ9.eyJpZCI6MjM4MTcwMywibXNpc2RuIjo"
    "0NTQyNjA5MDQ1LCJ0aW1lIjoxNTIyNzY0MDYyLCJzdGF0dXMiOiJERUxJVkVSRUQiLCJlcnJ"
    "vciI6bnVsbCwiY29kZSI6bnVsbCwidXNlcnJlZiI6bnVsbCwiY2FsbGJhY2tfdXJsIjoiaHR"
    "0cDovL2JiYWY3MTQyLm5ncm9rLmlvIiwiYXBpIjo0fQ.KdfDH65bnQtgxEkFnpAQodOciAJ"
    "edZFB13r9wEo8t3Y"
)

SMS_SETTINGS: dict[str, dict[str, Any]] = {
    "linkmobility": {
        "driver": "linkmobility",
        "url": "https://wsx.sp247.net/sms/send",
        "username": "u",
        "password": "p",
        "platform_id": "COMMON_API",
        "platform_partner_id": "22928",
        "source": "1910",
        "dlr_gate_id": "Gate-7xY",
    },
    "kannel": {
        "driver": "kannel",
        "url": "http://127.0.0.1:13013/cgi-bin/sendsms",
        "username": "u",
        "password": KANNEL_PASSWORD,
    },
    "gatewayapi": {
        "driver": "gatewayapi",
        "url": "https://gatewayapi.com",
        "token": "t",
        "webhook_secret": WEBHOOK_SECRET,
    },
}


def basic(user: str = "sms", password: str = PASSWORD) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def signed(payload: dict[str, Any], secret: str = WEBHOOK_SECRET) -> dict[str, str]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InsecureKeyLengthWarning)  # the docs' own "secret"
        return {"X-Gwapi-Signature": jwt.encode(payload, secret, algorithm="HS256")}


@dataclass
class Server:
    url: str
    db: Database
    clock: FrozenClock

    def use(self, provider: str) -> None:
        with self.db.transaction() as repos:
            settings = repos.agencies.settings(AGENCY).stored()
        settings["sms"] = SMS_SETTINGS[provider]
        with self.db.engine.begin() as conn:
            conn.execute(
                update(tables.agencies)
                .where(tables.agencies.c.id == AGENCY)
                .values(settings=settings)
            )

    def sent_text(self, *, status: MessageStatus = MessageStatus.SENT) -> int:
        """A text to 52903991 that the gateway took, a report expected (or still sending)."""
        now = self.clock()
        with self.db.transaction() as repos:
            [message_id] = repos.outbox.enqueue(
                [NewMessage(AGENCY, "+4552903991", "Hej", "GSM-7", 1, "staff", now)], now
            )
            repos.outbox.claim(now, now + dt.timedelta(minutes=5), "test", 10)
        if status is MessageStatus.SENT:
            self.record_sent(message_id)
        return message_id

    def record_sent(self, message_id: int) -> None:
        now = self.clock()
        outcome = Outcome(
            message_id, MessageStatus.SENT, now, now, "test", "sent", delivery="pending"
        )
        with self.db.transaction() as repos:
            repos.outbox.record([outcome], "test")

    def message(self, message_id: int) -> dict[str, Any]:
        with self.db.transaction() as repos:
            found = repos.outbox.get(message_id)
        assert found is not None
        return found

    def delivery(self, message_id: int) -> tuple[str, str | None]:
        row = self.message(message_id)
        return row["delivery"], row["delivery_code"]

    def snapshot(self) -> list[tuple[Any, ...]]:
        with self.db.engine.connect() as conn:
            return [
                tuple(r)
                for r in conn.execute(
                    select(
                        tables.messages.c.id,
                        tables.messages.c.delivery,
                        tables.messages.c.delivery_code,
                        tables.messages.c.updated_at,
                    ).order_by(tables.messages.c.id)
                ).all()
            ]

    def inbound(self) -> list[dict[str, Any]]:
        with self.db.engine.connect() as conn:
            rows = conn.execute(select(tables.inbound_sms).order_by(tables.inbound_sms.c.id))
            return [dict(r) for r in rows.mappings()]


@pytest.fixture
def server(db: Database, settings: Settings, clock: FrozenClock) -> Iterator[Server]:
    setup_library(db, clock)
    public = settings.model_copy(update={"metrics_public": True})  # /metrics is read below
    with live_server(create_app(public, db, clock)) as url:
        yield Server(url, db, clock)


def with_ref(example: str, message_id: int) -> str:
    return example.replace('"refId": "0"', f'"refId": "{message_id}"')


# -- LINK Mobility delivery reports ---------------------------------------------------------


def link_dlr(server: Server, body: str, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.post(
        f"{server.url}/sms/dlr/linkmobility/{AGENCY}",
        content=body,
        headers={"Content-Type": "application/json", **(basic() if headers is None else headers)},
    )


def test_link_published_examples_name_no_text_of_ours(server: Server) -> None:
    server.use("linkmobility")
    message_id = server.sent_text()
    before = server.snapshot()
    for example in (LINK_DELIVERED, LINK_NUMBER_ERROR):
        response = link_dlr(server, example)
        assert response.status_code == 200  # so that LINK stops retrying
    assert server.snapshot() == before
    assert server.delivery(message_id) == ("pending", None)


def test_link_reports_mark_texts_delivered_and_failed(server: Server) -> None:
    server.use("linkmobility")
    delivered, failed = server.sent_text(), server.sent_text()
    assert link_dlr(server, with_ref(LINK_DELIVERED, delivered)).status_code == 200
    assert link_dlr(server, with_ref(LINK_NUMBER_ERROR, failed)).status_code == 200
    row = server.message(delivered)
    assert (row["delivery"], row["delivery_code"]) == ("delivered", "1001")
    assert row["delivery_description"] == "Billed and delivered (operator: no.telenor, 2)"
    assert row["delivered_at"] == dt.datetime(2015, 11, 19, 9, 37, tzinfo=dt.UTC)
    row = server.message(failed)
    assert (row["delivery"], row["delivery_code"]) == ("failed", "2106")
    assert row["delivery_description"] == "Number error"


def test_link_duplicates_and_late_intermediate_reports_change_nothing(server: Server) -> None:
    server.use("linkmobility")
    message_id = server.sent_text()
    queued = with_ref(LINK_DELIVERED, message_id).replace(
        '"resultCode": 1001', '"resultCode": 1005'
    )
    assert link_dlr(server, queued).status_code == 200
    assert server.delivery(message_id) == ("pending", "1005")
    assert link_dlr(server, with_ref(LINK_DELIVERED, message_id)).status_code == 200
    after_final = server.snapshot()
    server.clock.advance(seconds=5)
    for late in (
        queued,
        with_ref(LINK_DELIVERED, message_id),
        with_ref(LINK_NUMBER_ERROR, message_id),
    ):
        assert link_dlr(server, late).status_code == 200
    assert server.snapshot() == after_final  # written once
    assert server.delivery(message_id) == ("delivered", "1001")


def test_a_report_before_the_send_outcome_is_kept(server: Server) -> None:
    server.use("linkmobility")
    message_id = server.sent_text(status=MessageStatus.SENDING)
    assert link_dlr(server, with_ref(LINK_DELIVERED, message_id)).status_code == 200
    server.record_sent(message_id)  # the dispatcher's batch commits after the report
    row = server.message(message_id)
    assert (row["status"], row["delivery"]) == ("sent", "delivered")


def test_parallel_guesses_are_throttled_and_a_providers_burst_is_not(server: Server) -> None:
    # Issue 13's attack on the new endpoints: 30 guesses at once at LINK's Basic credentials
    # from one address. A guess is counted before its argon2 check, so no more than the limit
    # (5 for one user at one address) reach the check; the rest answer 429.
    server.use("linkmobility")
    texts = [server.sent_text() for _ in range(24)]
    assert link_dlr(server, with_ref(LINK_DELIVERED, texts[0])).status_code == 200

    def report(message_id: int) -> int:
        return link_dlr(server, with_ref(LINK_DELIVERED, message_id)).status_code

    def guess(n: int) -> int:
        return link_dlr(server, LINK_DELIVERED, basic(password=f"guess-{n}")).status_code

    with ThreadPoolExecutor(12) as pool:  # a provider's burst of good reports: never throttled
        assert list(pool.map(report, texts[1:])) == [200] * 23
    with ThreadPoolExecutor(15) as pool:
        answers = list(pool.map(guess, range(30)))
    assert sorted(set(answers)) == [401, 429]
    assert answers.count(401) == 5, answers
    # While blocked even the right password is refused (the batch peeks the throttle in its own
    # transaction), and its report is not written.
    waiting = server.sent_text()
    refused = link_dlr(server, with_ref(LINK_DELIVERED, waiting))
    assert refused.status_code == 429
    assert int(refused.headers["Retry-After"]) > 0
    assert server.message(waiting)["delivery"] == "pending"
    # The same user's inbound texts from this address are refused while the block lasts.
    mo = httpx.post(f"{server.url}/sms/mo/linkmobility/{AGENCY}", content=b"{}", headers=basic())
    assert mo.status_code == 429
    assert int(mo.headers["Retry-After"]) > 0


@pytest.mark.parametrize(
    "headers",
    [{}, basic(password="wrong"), basic(user="nobody"), {"Authorization": "Basic !!!"}],
    ids=["none", "wrong-password", "unknown-user", "garbled"],
)
def test_link_bad_credentials_are_401_and_write_nothing(
    server: Server, headers: dict[str, str]
) -> None:
    server.use("linkmobility")
    message_id = server.sent_text()
    before = server.snapshot()
    response = link_dlr(server, with_ref(LINK_DELIVERED, message_id), headers)
    assert response.status_code == 401
    assert server.snapshot() == before


@pytest.mark.parametrize(
    "body",
    ["", "not json", "[1, 2]", '{"refId": "1"}', '{"resultCode": "x"}', "[" * 100000, '"\\ud800"'],
    ids=["empty", "text", "array", "no-code", "bad-code", "deep", "lone-surrogate"],
)
def test_link_garbage_is_400_never_5xx(server: Server, body: str) -> None:
    server.use("linkmobility")
    response = link_dlr(server, body)
    assert response.status_code == 400


def test_unknown_agency_answers_as_wrong_credentials(server: Server) -> None:
    # Neither status nor body tells a caller which agencies exist.
    unknown = httpx.post(
        f"{server.url}/sms/dlr/linkmobility/DK-999999", content=LINK_DELIVERED, headers=basic()
    )
    wrong = httpx.post(
        f"{server.url}/sms/dlr/linkmobility/{AGENCY}",
        content=LINK_DELIVERED,
        headers=basic(password="not-the-password"),
    )
    assert unknown.status_code == wrong.status_code == 401
    assert unknown.text == wrong.text
    kannel = httpx.get(f"{server.url}/sms/dlr/kannel/DK-999999?id=1&sig=x&type=1")
    assert (kannel.status_code, kannel.text) == (401, wrong.text)


# -- Kannel delivery reports ----------------------------------------------------------------


def kannel_dlr(
    server: Server, message_id: int, kind: int, sig: str | None = None
) -> httpx.Response:
    signature = sig if sig is not None else kannel_signature(KANNEL_PASSWORD, AGENCY, message_id)
    # As Kannel calls it once it has filled in %d, %T and %A.
    return httpx.get(
        f"{server.url}/sms/dlr/kannel/{AGENCY}?id={message_id}&sig={signature}"
        f"&type={kind}&at=1764500000&reply={quote('id:0123 sub:001 dlvrd:001 stat:DELIVRD')}"
    )


def test_kannel_intermediate_then_final(server: Server) -> None:
    server.use("kannel")
    message_id = server.sent_text()
    assert kannel_dlr(server, message_id, 8).status_code == 200
    assert server.delivery(message_id) == ("pending", "8")
    assert kannel_dlr(server, message_id, 1).status_code == 200
    row = server.message(message_id)
    assert (row["delivery"], row["delivery_code"]) == ("delivered", "1")
    assert row["delivery_description"].startswith("Delivered to phone: id:0123")
    assert row["delivered_at"] == dt.datetime.fromtimestamp(1764500000, dt.UTC)
    assert kannel_dlr(server, message_id, 16).status_code == 200  # too late: stays delivered
    assert server.delivery(message_id) == ("delivered", "1")


@pytest.mark.parametrize("kind", [2, 16])
def test_kannel_failure_types(server: Server, kind: int) -> None:
    server.use("kannel")
    message_id = server.sent_text()
    assert kannel_dlr(server, message_id, kind).status_code == 200
    assert server.delivery(message_id) == ("failed", str(kind))


def test_kannel_signature_must_match_the_text(server: Server) -> None:
    server.use("kannel")
    first, second = server.sent_text(), server.sent_text()
    before = server.snapshot()
    stolen = kannel_signature(KANNEL_PASSWORD, AGENCY, first)
    assert kannel_dlr(server, second, 1, sig=stolen).status_code == 401
    assert kannel_dlr(server, second, 1, sig="").status_code == 401
    assert httpx.get(f"{server.url}/sms/dlr/kannel/{AGENCY}?type=1").status_code == 401
    assert server.snapshot() == before


def test_kannel_reports_need_a_kannel_agency(server: Server) -> None:
    server.use("linkmobility")
    message_id = server.sent_text()
    assert kannel_dlr(server, message_id, 1).status_code == 401


def test_kannel_unknown_text_is_200(server: Server) -> None:
    server.use("kannel")
    assert kannel_dlr(server, 987654, 1).status_code == 200


def test_kannel_garbage_type_is_400(server: Server) -> None:
    server.use("kannel")
    message_id = server.sent_text()
    signature = kannel_signature(KANNEL_PASSWORD, AGENCY, message_id)
    url = f"{server.url}/sms/dlr/kannel/{AGENCY}?id={message_id}&sig={signature}&type=%d"
    assert httpx.get(url).status_code == 400  # Kannel's escape never filled in


# -- GatewayAPI delivery reports ------------------------------------------------------------


def gwapi_dlr(server: Server, body: str, headers: dict[str, str]) -> httpx.Response:
    return httpx.post(
        f"{server.url}/sms/dlr/gatewayapi/{AGENCY}",
        content=body,
        headers={"Content-Type": "application/json", **headers},
    )


def test_gatewayapi_published_examples(server: Server) -> None:
    server.use("gatewayapi")
    message_id = server.sent_text()
    before = server.snapshot()
    # The docs' token, verbatim, with the docs' example body: userref names none of ours.
    token = {"X-Gwapi-Signature": GWAPI_EXAMPLE_TOKEN}
    assert gwapi_dlr(server, GWAPI_DLR, token).status_code == 200
    assert server.snapshot() == before
    body = json.loads(GWAPI_DLR) | {"userref": str(message_id)}
    assert gwapi_dlr(server, json.dumps(body), signed(body)).status_code == 200
    row = server.message(message_id)
    assert (row["delivery"], row["delivery_code"]) == ("delivered", "DELIVERED")
    assert row["delivered_at"] == dt.datetime.fromtimestamp(1450000000, dt.UTC)


def test_gatewayapi_failure_with_its_reason_then_late_states(server: Server) -> None:
    server.use("gatewayapi")
    message_id = server.sent_text()
    report = {
        "id": 1000002,
        "msisdn": 4552903991,
        "time": 1450000100,
        "status": "UNDELIVERABLE",
        "error": "Unknown subscriber",
        "code": "0x1010",
        "userref": str(message_id),
    }
    assert gwapi_dlr(server, json.dumps(report), signed(report)).status_code == 200
    late = report | {"status": "ENROUTE", "error": None, "code": None}
    assert gwapi_dlr(server, json.dumps(late), signed(late)).status_code == 200
    row = server.message(message_id)
    assert (row["delivery"], row["delivery_code"]) == ("failed", "UNDELIVERABLE")
    assert "Unknown subscriber" in row["delivery_description"]
    assert "0x1010" in row["delivery_description"]


def test_gatewayapi_claims_not_the_body_decide(server: Server) -> None:
    server.use("gatewayapi")
    message_id = server.sent_text()
    claims = {"status": "REJECTED", "userref": str(message_id)}
    body = claims | {"status": "DELIVERED"}  # a replayed token with a body changed in transit
    assert gwapi_dlr(server, json.dumps(body), signed(claims)).status_code == 200
    assert server.delivery(message_id) == ("failed", "REJECTED")


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-Gwapi-Signature": "not.a.jwt"},
        signed({"status": "DELIVERED"}, secret="not-the-secret"),
        {"X-Gwapi-Signature": jwt.encode({"status": "DELIVERED"}, key=None, algorithm="none")},
        signed({"status": "DELIVERED"}, secret="x" * 64) | {"X-Gwapi-Signature": "y"},
        {
            "X-Gwapi-Signature": jwt.encode(
                {"status": "DELIVERED"}, "secret" * 20, algorithm="HS512"
            )
        },
    ],
    ids=["missing", "garbage", "wrong-secret", "alg-none", "not-a-token", "hs512"],
)
def test_gatewayapi_bad_signature_is_401_and_writes_nothing(
    server: Server, headers: dict[str, str]
) -> None:
    server.use("gatewayapi")
    message_id = server.sent_text()
    before = server.snapshot()
    body = json.dumps({"status": "DELIVERED", "userref": str(message_id)})
    assert gwapi_dlr(server, body, headers).status_code == 401
    assert server.snapshot() == before


def test_gatewayapi_garbage_is_400(server: Server) -> None:
    server.use("gatewayapi")
    assert gwapi_dlr(server, "[]", signed({"x": 1})).status_code == 400
    assert gwapi_dlr(server, "{}", signed({"status": ["DELIVERED"]})).status_code == 400


# -- Inbound texts --------------------------------------------------------------------------


def test_link_mo_published_example_and_a_renewal(server: Server) -> None:
    server.use("linkmobility")
    url = f"{server.url}/sms/mo/linkmobility/{AGENCY}"
    response = httpx.post(url, content=LINK_MO, headers=basic())
    assert (response.status_code, response.content) == (200, b"")
    assert server.inbound()[-1]["outcome"] == "unknown_number"  # a Norwegian number we lack
    ours = json.loads(LINK_MO)
    ours["source"], ours["content"]["userData"] = "+4552903991", "asd forny alle"
    assert httpx.post(url, json=ours, headers=basic()).status_code == 200
    log = server.inbound()[-1]
    assert (log["outcome"], log["renewed"], log["shortcode"]) == ("renewed", 2, "NO-2333")
    assert len(log["replies"]) == 2
    assert httpx.post(url, json=ours, headers=basic()).status_code == 200  # LINK retries
    assert server.inbound()[-1]["outcome"] == "duplicate"


def test_link_mo_renews_and_replies_as_the_seed_callback(server: Server) -> None:
    """The seed's spec example (``asd forny alle`` from 52903991) through LINK's MO gives the
    replies that ``test_renew_by_sms`` asserts for ``/rest/{agencyId}/smsgateway``."""
    server.use("linkmobility")
    body = {
        "source": "+4552903991",
        "destination": "DK-1910",
        "content": {"userData": "asd forny alle"},
    }
    response = httpx.post(f"{server.url}/sms/mo/linkmobility/{AGENCY}", json=body, headers=basic())
    assert (response.status_code, response.content) == (200, b"")
    with server.db.engine.connect() as conn:
        replies = conn.execute(
            select(tables.messages.c.to_number, tables.messages.c.text).order_by(
                tables.messages.c.id
            )
        ).all()
    assert [tuple(r) for r in replies] == [
        (
            "+4552903991",
            "Fornyelse for Karen Jensen:\n"
            "Kongens Fald: fornyet til 23.12.2026\n"
            "Ternet Ninja: ikke fornyet, reserveret af en anden",
        ),
        (
            "+4552903991",
            "Fornyelse for Oskar Jensen:\n"
            "Den lille prins: ikke fornyet, kan ikke fornyes flere gange\n"
            "Harry Potter: fornyet til 23.12.2026",
        ),
    ]


@pytest.mark.parametrize(
    ("headers", "status"),
    [({}, 401), (basic(password="wrong"), 401)],
    ids=["none", "wrong"],
)
def test_link_mo_bad_credentials_write_nothing(
    server: Server, headers: dict[str, str], status: int
) -> None:
    server.use("linkmobility")
    response = httpx.post(
        f"{server.url}/sms/mo/linkmobility/{AGENCY}", content=LINK_MO, headers=headers
    )
    assert response.status_code == status
    assert server.inbound() == []


def test_link_mo_garbage_is_400(server: Server) -> None:
    server.use("linkmobility")
    url = f"{server.url}/sms/mo/linkmobility/{AGENCY}"
    for body in ("{}", '{"source": "+4552903991", "content": "x"}', "nope"):
        assert httpx.post(url, content=body, headers=basic()).status_code == 400
    assert server.inbound() == []


def test_gatewayapi_mo_published_example_and_a_renewal(server: Server) -> None:
    server.use("gatewayapi")
    url = f"{server.url}/sms/mo/gatewayapi/{AGENCY}"
    example = json.loads(GWAPI_MO)
    response = httpx.post(url, content=GWAPI_MO, headers=signed(example))
    assert response.status_code == 200
    assert server.inbound()[-1]["outcome"] == "unknown_number"
    ours = example | {"msisdn": 4552903991, "message": "foo forny alle"}
    assert httpx.post(url, json=ours, headers=signed(ours)).status_code == 200
    log = server.inbound()[-1]
    assert (log["outcome"], log["renewed"], log["number"]) == ("renewed", 2, "+4552903991")


def test_gatewayapi_mo_bad_signature_writes_nothing(server: Server) -> None:
    server.use("gatewayapi")
    url = f"{server.url}/sms/mo/gatewayapi/{AGENCY}"
    ours = json.loads(GWAPI_MO) | {"msisdn": 4552903991, "message": "foo forny alle"}
    assert httpx.post(url, json=ours, headers=signed(ours, "wrong")).status_code == 401
    assert httpx.post(url, json=ours).status_code == 401
    assert server.inbound() == []


def test_gatewayapi_mo_for_an_agency_without_the_driver_is_401(server: Server) -> None:
    server.use("kannel")
    ours = json.loads(GWAPI_MO)
    response = httpx.post(
        f"{server.url}/sms/mo/gatewayapi/{AGENCY}", json=ours, headers=signed(ours)
    )
    assert response.status_code == 401
    assert server.inbound() == []


# -- Kannel's recoded inbound texts on the seed's GET ------------------------------------


def seed_get(server: Server, query: str) -> httpx.Response:
    base = f"user=sms&password={PASSWORD}&shortcode=1910&countrycode=45&number=52903991"
    return httpx.get(f"{server.url}/rest/{AGENCY}/smsgateway?{base}&{query}")


def test_latin1_text_named_by_its_charset(server: Server) -> None:
    response = seed_get(server, "text=H%F8rsholm%20forny%20alle&charset=ISO-8859-1")
    assert response.status_code == 200
    assert server.inbound()[-1]["text"] == "Hørsholm forny alle"


def test_ucs2_text_named_by_its_coding(server: Server) -> None:
    encoded = quote("Hørsholm forny alle".encode("utf-16-be"))
    assert seed_get(server, f"text={encoded}&coding=2").status_code == 200
    assert server.inbound()[-1]["text"] == "Hørsholm forny alle"


def test_latin1_without_its_charset_is_still_400(server: Server) -> None:
    response = seed_get(server, "text=H%F8rsholm%20forny%20alle")
    assert response.status_code == 400
    assert "UTF-8" in response.text
    assert seed_get(server, "text=x&charset=EBCDIC-XYZ").status_code == 400
    assert server.inbound() == []


# -- Staff view: the error queue and metrics -------------------------------------------------


def test_failed_deliveries_on_the_error_queue_and_in_metrics(server: Server, db: Database) -> None:
    server.use("linkmobility")
    delivered, failed = server.sent_text(), server.sent_text()
    link_dlr(server, with_ref(LINK_DELIVERED, delivered))
    link_dlr(server, with_ref(LINK_NUMBER_ERROR, failed))
    with db.transaction() as repos:
        counts = repos.outbox.delivery_counts()
    assert counts == {(AGENCY, "delivered"): 1, (AGENCY, "failed"): 1}
    metrics = httpx.get(f"{server.url}/metrics").text
    assert (
        'patronlink_sms_delivery_reports_total{outcome="delivered",provider="linkmobility"} 1.0'
        in metrics
    )
    assert f'patronlink_sms_delivered_share{{agency="{AGENCY}"}} 0.5' in metrics
