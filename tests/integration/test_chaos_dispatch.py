"""Chaos: 10,000 texts through two misbehaving gateways, on SQLite and PostgreSQL.

An XML-family gateway and a LINK Mobility gateway (real HTTP on 127.0.0.1) answer each attempt
from a plan drawn with a fixed seed: success, buffered, HTTP 503, a read timeout, a dropped
connection, temporary codes (1029, 106300), permanent codes (1002, 101101, 106001) and malformed
replies. The plan also says what must happen to every text, attempt by attempt, so the test checks
more than totals: each text ends ``sent`` or ``error`` with the gateway's own code and description,
its ``message_attempts`` rows are exactly the planned ones (never more than ``max_attempts``), and
the gateways received exactly one request per recorded attempt.

The dispatcher runs in-process, one ``run(once=True)`` per round with a frozen clock that moves a
second between rounds; the retry backoff is zero so a round retries what is due at once.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, replace

import pytest
from sqlalchemy import select

from patronlink.config.schema import AgencyConfig
from patronlink.domain.agency import Agency
from patronlink.domain.dispatch import DispatchSettings
from patronlink.domain.outbox import RetryPolicy
from patronlink.gateways.registry import build_gateway
from patronlink.services.configure import agency_settings
from patronlink.services.outbox import prepare
from patronlink.storage import tables
from patronlink.storage.database import Database
from patronlink.worker.dispatcher import Dispatcher, DispatchStats
from tests.conftest import FrozenClock
from tests.support.gateway_servers import (
    LinkMobilityServer,
    ReceivedRequest,
    Reply,
    ScriptedGateway,
    XmlGatewayServer,
)

pytestmark = pytest.mark.slow

SEED = 20261123
PER_FAMILY = 5_000
MAX_ATTEMPTS = 4
# Seconds. Generous for loopback so that only the planned slow replies time out, even on a busy CI
# machine (a spurious timeout of a reply the gateway did send is a text sent twice, by design).
READ_TIMEOUT = 3.0
SLOW_REPLY = 8.0
MAX_ROUNDS = 3 * MAX_ATTEMPTS
TIME_BUDGET = 240.0  # seconds per backend; the run measured about a tenth of that

XML_AGENCY, LINK_AGENCY = "DK-761500", "DK-775100"
ENVIRON = {"CHAOS_XML_PASSWORD": "xml-secret", "CHAOS_LINK_PASSWORD": "link-secret"}


@dataclass(frozen=True)
class Fault:
    """One planned answer and what the dispatcher must record for it."""

    name: str
    reply: Reply
    outcome: str  # the message_attempts outcome: sent | buffered | temporary | permanent
    http_status: int | None
    code: str | None
    description: str  # exact, or with ``...`` at the end a prefix
    weight: int

    def describes(self, text: str | None) -> bool:
        if self.description.endswith("..."):
            return (text or "").startswith(self.description[:-3])
        return text == self.description


def _timeout(family: str, weight: int) -> Fault:
    return Fault(
        "timeout", Reply(delay=SLOW_REPLY), "temporary", None, None,
        f"{family}: gateway timed out...", weight,
    )  # fmt: skip


def _dropped(family: str, weight: int) -> Fault:
    return Fault(
        "dropped", Reply(drop=True), "temporary", None, None,
        f"{family}: gateway not reachable...", weight,
    )  # fmt: skip


XML_FAULTS = [
    Fault("success", XmlGatewayServer.spec_success(), "sent", 200, "0", "SMS afsendt.", 48),
    Fault(
        "buffered", XmlGatewayServer.code_reply(1042, "Buffered, e.g. because phone is off."),
        "buffered", 200, "1042", "Buffered, e.g. because phone is off.", 4,
    ),
    Fault("503", Reply(503, "Service Unavailable"), "temporary", 503, None, "xml: HTTP 503", 10),
    _timeout("xml", 1),
    _dropped("xml", 3),
    Fault(
        "1029", XmlGatewayServer.code_reply(1029, "Provider temporarily unavailable."),
        "temporary", 200, "1029", "Provider temporarily unavailable.", 12,
    ),
    Fault(
        "1002", XmlGatewayServer.code_reply(1002, "Invalid phone number specified."),
        "permanent", 200, "1002", "Invalid phone number specified.", 7,
    ),
    # A 2xx the driver cannot read is sent, kept as it came, never sent again (issue 16).
    Fault(
        "malformed", XmlGatewayServer.malformed(), "sent", 200, None,
        XmlGatewayServer.malformed().payload().decode().strip(), 8,
    ),
    Fault(
        "json-to-xml-client", LinkMobilityServer.spec_error(200), "sent", 200, None,
        LinkMobilityServer.spec_error(200).payload().decode().strip(), 3,
    ),
]  # fmt: skip

LINK_FAULTS = [
    Fault("success", LinkMobilityServer.spec_success(), "sent", 200, "1005", "Queued", 50),
    Fault(
        "503", Reply(503, "Service Unavailable"), "temporary", 503, None,
        "linkmobility: HTTP 503", 10,
    ),
    _timeout("linkmobility", 1),
    _dropped("linkmobility", 3),
    Fault(
        "106300", LinkMobilityServer.error_reply(503, 106300, "No gates available"),
        "temporary", 503, "106300", "No gates available", 12,
    ),
    Fault(
        "101101", LinkMobilityServer.spec_error(403), "permanent", 403, "101101",
        "Access denied", 5,
    ),
    Fault(
        "106001", LinkMobilityServer.error_reply(400, 106001, "Parse Error"),
        "permanent", 400, "106001", "Parse Error", 3,
    ),
    Fault(
        "malformed", Reply(200, '{"messageId": ', "application/json"), "sent", 200, None,
        '{"messageId":', 10,
    ),
]  # fmt: skip


def plan_for(faults: list[Fault], rng: random.Random) -> list[Fault]:
    """The answers to one text's attempts, up to where its fate is sealed."""
    weights = [f.weight for f in faults]
    plan: list[Fault] = []
    while len(plan) < MAX_ATTEMPTS:
        fault = rng.choices(faults, weights)[0]
        plan.append(fault)
        if fault.outcome != "temporary":
            break
    return plan


class PlannedGateway:
    """Answers the n-th request for text ``i`` with ``plans[i][n]`` and counts the requests."""

    def __init__(self, plans: dict[str, list[Fault]], text_of: str) -> None:
        self.plans = plans
        self.text_of = text_of
        self.seen: Counter[str] = Counter()
        self.overflow: list[str] = []
        self._lock = threading.Lock()

    def __call__(self, request: ReceivedRequest) -> Reply:
        text = request.form["message"] if self.text_of == "form" else request.json["userData"]
        with self._lock:
            n = self.seen[text]
            self.seen[text] += 1
        plan = self.plans[text]
        if n >= len(plan):
            self.overflow.append(text)  # sent again after its fate was sealed: a bug
            return Reply(500, "unplanned attempt")
        return plan[n].reply


def make_agency(db: Database, clock: FrozenClock, agency_id: str, sms: dict[str, object]) -> None:
    config = AgencyConfig.model_validate(
        {
            "id": agency_id,
            "name": agency_id,
            "sms": {
                "max_attempts": MAX_ATTEMPTS,
                "read_timeout": READ_TIMEOUT,
                "connect_timeout": 2.0,
                "concurrency": 32,
                **sms,
            },
        }
    )
    with db.transaction() as repos:
        repos.agencies.upsert(
            Agency(id=agency_id, name=agency_id), agency_settings(config), clock()
        )


def enqueue(db: Database, clock: FrozenClock, agency_id: str, texts: list[str]) -> None:
    with db.transaction() as repos:
        agency = repos.agencies.get(agency_id)
        assert agency is not None
        template = prepare(repos, agency, "52903991", "x", now=clock(), send_at=None, origin="cli")
        repos.outbox.enqueue([replace(template, text=t) for t in texts], clock())


async def one_round(db: Database, clock: FrozenClock) -> DispatchStats:
    settings = DispatchSettings(retry=RetryPolicy(base_seconds=0, cap_seconds=0))
    dispatcher = Dispatcher(db, clock, build_gateway, settings=settings, environ=ENVIRON)
    try:
        return await dispatcher.run(once=True)
    finally:
        await dispatcher.aclose()


def test_ten_thousand_texts_through_misbehaving_gateways(
    db: Database, clock: FrozenClock, backend: str
) -> None:
    rng = random.Random(SEED)
    plans = {f"chaos xml {i}": plan_for(XML_FAULTS, rng) for i in range(PER_FAMILY)}
    plans |= {f"chaos link {i}": plan_for(LINK_FAULTS, rng) for i in range(PER_FAMILY)}
    xml_plans = PlannedGateway(plans, "form")
    link_plans = PlannedGateway(plans, "json")
    xml_server = XmlGatewayServer()
    link_server = LinkMobilityServer(password=ENVIRON["CHAOS_LINK_PASSWORD"])
    xml_server.default = xml_plans  # type: ignore[assignment]
    link_server.default = link_plans  # type: ignore[assignment]

    with xml_server, link_server:
        make_agency(db, clock, XML_AGENCY, _xml_sms(xml_server))
        make_agency(db, clock, LINK_AGENCY, _link_sms(link_server))
        enqueue(db, clock, XML_AGENCY, [t for t in plans if t.startswith("chaos xml")])
        enqueue(db, clock, LINK_AGENCY, [t for t in plans if t.startswith("chaos link")])

        started = time.monotonic()
        totals = DispatchStats()
        for _ in range(MAX_ROUNDS):
            stats = asyncio.run(one_round(db, clock))
            for name in ("claimed", "sent", "retried", "failed"):
                setattr(totals, name, getattr(totals, name) + getattr(stats, name))
            if stats.claimed == 0:
                break
            clock.advance(seconds=1)
        elapsed = time.monotonic() - started
        print(f"chaos[{backend}]: {len(plans)} texts, {totals} in {elapsed:.1f} s")
        assert elapsed < TIME_BUDGET

    found = _messages_with_attempts(db)
    assert xml_plans.overflow == []
    assert link_plans.overflow == []
    assert len(found) == len(plans)
    expected_status: Counter[str] = Counter()
    for text, (message, attempts) in found.items():
        plan = plans[text]
        final = plan[-1]
        status = "error" if final.outcome in ("temporary", "permanent") else "sent"
        expected_status[status] += 1
        assert message["status"] == status, text
        assert len(attempts) == len(plan) <= MAX_ATTEMPTS, text
        assert message["attempts"] == len(plan), text
        for planned, row in zip(plan, attempts, strict=True):
            assert (row["outcome"], row["http_status"], row["code"]) == (
                planned.outcome,
                planned.http_status,
                planned.code,
            ), (text, planned.name, row)
            assert planned.describes(row["description"]), (text, planned.name, row)
        assert (message["last_code"], message["last_http_status"]) == (
            final.code,
            final.http_status,
        ), text
        assert final.describes(message["last_description"]), text
        assert message["buffered"] == (final.outcome == "buffered"), text
    # Every recorded attempt was one request, and every request a recorded attempt.
    assert xml_plans.seen + link_plans.seen == Counter(
        {text: len(attempts) for text, (_message, attempts) in found.items()}
    )
    statuses = Counter(m["status"] for m, _a in found.values())
    assert statuses == expected_status
    assert statuses["sent"] + statuses["error"] == len(plans)
    assert totals.sent == statuses["sent"]
    assert totals.failed == statuses["error"]
    assert totals.claimed == sum(len(p) for p in plans.values())
    # The seed must exercise what the test is about: each fault, and texts failing both ways.
    used = Counter(f.name for p in plans.values() for f in p)
    assert all(used[f.name] > 0 for f in XML_FAULTS + LINK_FAULTS)
    exhausted = sum(1 for p in plans.values() if p[-1].outcome == "temporary")
    assert exhausted > 0
    assert statuses["error"] - exhausted > 0


def _xml_sms(server: ScriptedGateway) -> dict[str, object]:
    return {
        "driver": "xml",
        "url": server.url,
        "username": "chaos",
        "password": "${CHAOS_XML_PASSWORD}",
    }


def _link_sms(server: LinkMobilityServer) -> dict[str, object]:
    return {
        "driver": "linkmobility",
        "url": server.url,
        "username": server.username,
        "password": "${CHAOS_LINK_PASSWORD}",
        "platform_id": "COMMON_API",
        "platform_partner_id": "22928",
        "source": "Chaos",
    }


def _messages_with_attempts(
    db: Database,
) -> dict[str, tuple[dict[str, object], list[dict[str, object]]]]:
    m, a = tables.messages, tables.message_attempts
    with db.engine.connect() as conn:
        messages = {r.id: dict(r._mapping) for r in conn.execute(select(m))}
        attempts: dict[int, list[dict[str, object]]] = {i: [] for i in messages}
        for row in conn.execute(select(a).order_by(a.c.message_id, a.c.id)):
            attempts[row.message_id].append(dict(row._mapping))
    return {str(msg["text"]): (msg, attempts[i]) for i, msg in messages.items()}
