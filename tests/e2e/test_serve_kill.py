"""``patronlink serve`` SIGKILLed twice under load: staff texts, renewal by SMS and dispatch.

A real server (HTTP and its worker in one process) on both backends; staff clients queue texts
through the API while phones send "forny alle" to the SMS callback and the worker delivers to a
slow loopback XML gateway. The server is killed at seeded points (after N texts seen at the
gateway) and started again, twice, then runs to the end. Afterwards:

- every text the API acknowledged (201) is delivered, none lost; a text whose request was cut by
  the kill is either wholly there and delivered or not there at all;
- no text reached the gateway more than twice, and no more than the in-flight bound per kill
  were repeated;
- every renewal by SMS is all or nothing: its log row, its loan's renewal and its reply text
  exist together or not at all, and every acknowledged one exists.
"""

from __future__ import annotations

import collections
import datetime as dt
import os
import random
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from patronlink.settings import Settings
from patronlink.storage import tables
from patronlink.storage.database import Database
from tests.support.feeds import folio_body, folio_user
from tests.support.gateway_servers import SPEC_XML_SUCCESS, Reply, XmlGatewayServer
from tests.support.processes import check_cli, free_port, start, stop, wait_for_health

pytestmark = pytest.mark.slow  # a long fault-injection run: `make long` (CI runs it)

AGENCY = "DK-761500"
TEXTS = 1500
PHONES = 150
PACE = TEXTS // PHONES // 2  # staff texts a phone: the phones are done halfway through
MAX_IN_FLIGHT = 32
STAFF_NUMBER = "52903991"
INBOUND_PASSWORD = "kill-test-inbound"
DEADLINE_SECONDS = 120

CONFIG = """\
[[agencies]]
id = "{agency}"
name = "Horsens"
country_code = "45"

[agencies.sms]
driver = "xml"
url = "{gateway}"
username = "horsens"
password = "${{KILL_SMS_PASSWORD}}"
concurrency = {concurrency}

[agencies.renewal]
sms_enabled = true

[[agencies.integration_users]]
username = "sms"
password = "${{KILL_INBOUND_PASSWORD}}"

[[import_sources]]
id = "phones"
agency = "{agency}"
url = "{feed}"
format = "folio-json"
"""


def phone(i: int) -> str:
    return f"26{i:06d}"


@dataclass
class Traffic:
    """Staff texts and inbound SMS, each sent once; what each request's answer was."""

    base: str
    token: str
    texts: dict[str, str] = field(default_factory=dict)  # text -> "ok" | "cut"
    inbound: dict[int, str] = field(default_factory=dict)  # phone index -> "ok" | "cut"
    unexpected: list[str] = field(default_factory=list)
    staff_stopped: threading.Event = field(default_factory=threading.Event)

    def staff(self) -> None:
        headers = {"Authorization": f"Bearer {self.token}"}
        try:
            self._staff(headers)
        finally:
            self.staff_stopped.set()

    def _staff(self, headers: dict[str, str]) -> None:
        with httpx.Client(base_url=self.base, headers=headers, timeout=30) as client:
            while (n := len(self.texts)) < TEXTS:
                text = f"Kill test message {n:05d}"
                try:
                    answer = client.post(
                        f"/api/v1/agencies/{AGENCY}/messages",
                        json={"to": STAFF_NUMBER, "text": text},
                    )
                except httpx.TransportError:
                    self.texts[text] = "cut"
                    return
                if answer.status_code != 201:
                    self.unexpected.append(f"{answer.status_code} {answer.text}")
                    return
                self.texts[text] = "ok"

    def phones(self) -> None:
        path = f"{self.base}/rest/{AGENCY}/smsgateway"
        with httpx.Client(timeout=30) as client:
            while (i := len(self.inbound)) < PHONES:
                # A phone for every PACE staff texts, so that the renewals span the kills
                # however slowly the server takes the texts on a loaded machine.
                while len(self.texts) < i * PACE and not self.staff_stopped.is_set():
                    time.sleep(0.01)
                params = {
                    "user": "sms",
                    "password": INBOUND_PASSWORD,
                    "shortcode": "1910",
                    "countrycode": "45",
                    "number": phone(i),
                    "text": "Horsens forny alle",
                }
                try:
                    answer = client.get(path, params=params)
                except httpx.TransportError:
                    self.inbound[i] = "cut"
                    return
                if answer.status_code != 200:
                    self.unexpected.append(f"{answer.status_code} {answer.text}")
                    return
                self.inbound[i] = "ok"
                time.sleep(0.05)  # a phone at a time

    def start(self) -> list[threading.Thread]:
        self.staff_stopped.clear()
        threads = [threading.Thread(target=self.staff), threading.Thread(target=self.phones)]
        for thread in threads:
            thread.start()
        return threads


def statuses(db: Database) -> dict[str, int]:
    m = tables.messages
    with db.engine.connect() as conn:
        rows = conn.execute(select(m.c.status, func.count()).group_by(m.c.status)).all()
    return {str(s): int(n) for s, n in rows}


def serve(env: dict[str, str], log: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    server = start(["serve", "--port", str(port)], env, log)
    base = f"http://127.0.0.1:{port}"
    wait_for_health(base, server, log)
    return server, base


def test_a_killed_server_loses_nothing_and_half_applies_nothing(
    db: Database, settings: Settings, backend: str, tmp_path: Path
) -> None:
    rng = random.Random(f"serve-kill-{backend}")  # fixed seed: the same kill points every run
    # Each life of the server ends after this many gateway requests and renewals by SMS.
    kill_after = [(rng.randint(100, 300), rng.randint(20, 40)) for _ in range(2)]
    env = {
        **os.environ,
        "PATRONLINK_DATABASE_URL": settings.database_url,
        "PATRONLINK_DISPATCH_LEASE_SECONDS": "2",
        "PATRONLINK_DISPATCH_MAX_IN_FLIGHT": str(MAX_IN_FLIGHT),
        "PATRONLINK_DISPATCH_POLL_SECONDS": "0.2",
        "PATRONLINK_RETRY_BASE_SECONDS": "0.5",
        "PATRONLINK_RETRY_CAP_SECONDS": "2",
        "KILL_SMS_PASSWORD": "kill-test-sms",
        "KILL_INBOUND_PASSWORD": INBOUND_PASSWORD,
    }
    log = tmp_path / "serve.log"
    feed = tmp_path / "phones.json"
    users = [folio_user(i, mobilePhone=f"+45 {phone(i)}") for i in range(PHONES)]
    feed.write_bytes(folio_body(users))
    slow = Reply(200, SPEC_XML_SUCCESS, "text/xml", "iso-8859-1", delay=0.05)
    with XmlGatewayServer(default=slow) as gateway:
        config = tmp_path / "patronlink.toml"
        config.write_text(
            CONFIG.format(
                agency=AGENCY, gateway=gateway.url, feed=feed.as_uri(), concurrency=MAX_IN_FLIGHT
            )
        )
        check_cli(["config", "apply", str(config)], env)
        check_cli(["import", "run", "phones"], env)
        token = check_cli(["token", "create", "--name", "kill"], env).strip()

        server, base = serve(env, log)
        try:
            staff = httpx.Client(
                base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=30
            )
            with staff:
                due = dt.datetime.now(dt.UTC).date() + dt.timedelta(days=2)
                for i in range(PHONES):
                    item = f"50{i:05d}"
                    assert staff.post(
                        f"/api/v1/agencies/{AGENCY}/items",
                        json={"item_number": item, "title": f"Bog {i}"},
                    ).is_success
                    assert staff.post(
                        f"/api/v1/agencies/{AGENCY}/loans",
                        json={
                            "patron_id": str(1_000_000 + i),
                            "item_number": item,
                            "due_date": due.isoformat(),  # soon: a renewal lends it longer
                        },
                    ).is_success
            traffic = Traffic(base, token)
            killed_at: list[tuple[int, int, int]] = []
            for life, (requests, renewals) in enumerate(kill_after):
                traffic.base = base
                threads = traffic.start()
                seen, renewed_before = len(gateway.requests), len(traffic.inbound)
                deadline = time.monotonic() + 60
                while (
                    len(gateway.requests) < seen + requests
                    or len(traffic.inbound) < renewed_before + renewals
                ):
                    assert server.poll() is None, log.read_text(errors="replace")
                    assert time.monotonic() < deadline, f"life {life}: too few texts sent"
                    time.sleep(0.005)
                assert all(t.is_alive() for t in threads), (
                    f"the traffic ended before the kill: {len(traffic.texts)} texts, "
                    f"{len(traffic.inbound)} inbound, {len(gateway.requests) - seen} sent, "
                    f"{traffic.unexpected}"
                )
                server.send_signal(signal.SIGKILL)
                server.wait(10)
                for thread in threads:
                    thread.join(60)
                killed_at.append((len(gateway.requests), len(traffic.texts), len(traffic.inbound)))
                server, base = serve(env, log)
            traffic.base = base
            for thread in traffic.start():
                thread.join(120)
            assert not traffic.unexpected, traffic.unexpected
            deadline = time.monotonic() + DEADLINE_SECONDS
            while (left := statuses(db)).keys() - {"sent"}:
                assert server.poll() is None, log.read_text(errors="replace")
                assert time.monotonic() < deadline, f"not delivered: {left}"
                time.sleep(0.2)
        finally:
            stop(server)
        received = list(gateway.requests)

    # uvicorn ends a SIGTERM-ed server by raising the signal again, after a clean shutdown.
    assert server.returncode in (0, -signal.SIGTERM), log.read_text(errors="replace")[-3000:]
    assert "Application shutdown complete" in log.read_text(errors="replace")[-2000:]
    m = tables.messages
    with db.engine.connect() as conn:
        stored = collections.Counter(
            conn.execute(select(m.c.text).where(m.c.origin == "staff")).scalars()
        )
        replies = dict(
            conn.execute(select(m.c.id, m.c.to_number).where(m.c.origin == "renewal")).all()
        )
        inbound = list(conn.execute(select(tables.inbound_sms)))
        renewed = dict(
            conn.execute(
                select(tables.patrons.c.patron_id, tables.loans.c.renewal_count).join(
                    tables.loans, tables.loans.c.patron_pk == tables.patrons.c.id
                )
            ).all()
        )
    # Staff texts: acknowledged ones all stored once and delivered; cut ones once or not at all.
    sent = collections.Counter(r.form["message"] for r in received)
    for text, answer in traffic.texts.items():
        assert stored[text] <= 1, f"{text!r} stored twice"
        if answer == "ok":
            assert stored[text] == 1, f"acknowledged {text!r} was lost"
        assert (sent[text] > 0) == (stored[text] == 1), f"{text!r} stored/sent disagree"
    assert len(traffic.texts) == TEXTS
    assert max(sent.values()) <= 2, "a text was sent three times"
    repeated = sum(1 for n in sent.values() if n > 1)
    assert repeated <= MAX_IN_FLIGHT * len(kill_after), f"{repeated} texts sent twice"
    # Renewals by SMS: the log row, the loan's renewal and the reply, together or not at all.
    by_number = collections.Counter(r.number[-8:] for r in inbound)
    assert len(traffic.inbound) == PHONES
    for i, answer in traffic.inbound.items():
        logged = by_number[phone(i)]
        assert logged <= 1, f"phone {i}: {logged} log rows"
        if answer == "ok":
            assert logged == 1, f"acknowledged renewal of phone {i} was lost"
        rows = [r for r in inbound if r.number.endswith(phone(i))]
        assert renewed[str(1_000_000 + i)] == logged, f"phone {i}: {rows}"
    for row in inbound:
        assert row.outcome == "renewed", row
        assert len(row.replies) == 1, row
        assert row.replies[0] in replies, f"the reply of {row.number} is missing"
        assert row.number[-8:] == replies[row.replies[0]][-8:]
    reply_numbers = collections.Counter(
        r.form["number"][-8:] for r in received if r.form["message"] not in stored
    )
    assert set(reply_numbers) == set(by_number), "a reply was not delivered (or one too many)"
    assert max(reply_numbers.values()) <= 2
    print(
        f"{backend}: killed at (gateway requests, texts, inbound) {killed_at}; "
        f"{len(received)} requests for {sum(stored.values())} texts and {len(inbound)} renewals; "
        f"{repeated} text(s) sent twice; cut requests: "
        f"{sum(a == 'cut' for a in traffic.texts.values())} staff, "
        f"{sum(a == 'cut' for a in traffic.inbound.values())} inbound"
    )
