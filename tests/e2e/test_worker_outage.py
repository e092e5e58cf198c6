"""A worker keeps sending through a database outage and a burst of cut connections (issue 14).

PostgreSQL, a real ``patronlink worker`` with its metrics port, a real XML gateway on 127.0.0.1.
While the worker dispatches, the test's own database is made to refuse connections for 8 s
(``ALTER DATABASE ... ALLOW_CONNECTIONS false`` and every backend of it terminated), and later
its connections are cut again and again (``pg_terminate_backend``); the server itself is never
stopped. Before the fix, the dispatcher died at the first failure while the process lived on:
nothing more was sent, and the texts it held went out again after their lease.

Checked: every text reaches the gateway, none more than once beyond the in-flight bound; the
worker's ``/readyz`` is red during the outage and green after; its queue gauges stay present
(stale) while the database is away; each episode of failures is one error line and one recovery
line; SIGTERM afterwards ends the worker with exit 0.
"""

from __future__ import annotations

import collections
import datetime as dt
import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, func, make_url, select, text
from sqlalchemy.engine import Engine

from patronlink.services.agencies import require_agency
from patronlink.services.clock import system_clock
from patronlink.services.outbox import prepare
from patronlink.settings import Settings
from patronlink.storage import tables
from patronlink.storage.database import Database
from patronlink.storage.engine import make_engine
from patronlink.storage.migrate import upgrade
from tests.support.databases import postgres_base_url, postgres_database
from tests.support.gateway_servers import SPEC_XML_SUCCESS, Reply, XmlGatewayServer
from tests.support.processes import check_cli, free_port, start, stop

AGENCY = "DK-761500"
MESSAGES = 1500
MAX_IN_FLIGHT = 32
OUTAGE_SECONDS = 8
BURST = 6  # connections cut this many times, 0.3 s apart
# Short enough that a text whose outcome was lost would be sent again within the test (and be
# counted as a repeat), long enough that no send outlasts it.
LEASE_SECONDS = 20
DEADLINE_SECONDS = 120

CONFIG = """\
[[agencies]]
id = "{agency}"
name = "Horsens Bibliotek"

[agencies.sms]
driver = "xml"
url = "{gateway}"
username = "user1"
password = "outage-sms"
concurrency = 16
"""

# A long fault-injection run: `make long` (CI runs it).
pytestmark = [pytest.mark.postgres, pytest.mark.slow]


@pytest.fixture
def own_database() -> Iterator[str]:
    """A database of this test's own, so that refusing its connections touches nothing else."""
    postgres_base_url()  # skips without PostgreSQL
    with postgres_database("outage") as url:
        engine = make_engine(Settings(database_url=url))
        upgrade(engine)
        engine.dispose()
        yield url


def _admin() -> Engine:
    return create_engine(make_url(postgres_base_url()), isolation_level="AUTOCOMMIT")


def _cut_connections(admin: Engine, name: str) -> int:
    with admin.connect() as conn:
        return len(
            conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = :name AND pid <> pg_backend_pid()"
                ),
                {"name": name},
            ).all()
        )


def _allow_connections(admin: Engine, name: str, allow: bool) -> None:
    with admin.connect() as conn:
        conn.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS {str(allow).lower()}'))


def _statuses(admin_url: str) -> dict[str, int]:
    engine = create_engine(admin_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                select(tables.messages.c.status, func.count()).group_by(tables.messages.c.status)
            ).all()
    finally:
        engine.dispose()
    return {str(status): int(n) for status, n in rows}


def _readyz(port: int) -> int:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5).status_code
    except httpx.TransportError:
        return -1


def _log_lines(log: Path) -> list[dict[str, object]]:
    lines = []
    for raw in log.read_text(errors="replace").splitlines():
        if raw.startswith("{"):
            lines.append(json.loads(raw))
    return lines


def _wait(condition: object, what: str, worker: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + DEADLINE_SECONDS
    while not condition():  # type: ignore[operator]
        assert worker.poll() is None, f"worker exited:\n{log.read_text(errors='replace')}"
        assert time.monotonic() < deadline, f"{what}: not within {DEADLINE_SECONDS} s"
        time.sleep(0.05)


def test_worker_sends_everything_through_an_outage_and_a_burst_of_cut_connections(
    own_database: str, tmp_path: Path
) -> None:
    name = make_url(own_database).database
    assert name is not None
    admin = _admin()
    port = free_port()
    env = {
        **os.environ,
        "PATRONLINK_DATABASE_URL": own_database,
        "PATRONLINK_DISPATCH_LEASE_SECONDS": str(LEASE_SECONDS),
        "PATRONLINK_DISPATCH_MAX_IN_FLIGHT": str(MAX_IN_FLIGHT),
        "PATRONLINK_DISPATCH_POLL_SECONDS": "0.2",
        "PATRONLINK_BACKOFF_CAP_SECONDS": "1",
        "PATRONLINK_WORKER_METRICS_PORT": str(port),
        "PATRONLINK_LOG_LEVEL": "info",
    }
    log = tmp_path / "worker.log"
    slow = Reply(200, SPEC_XML_SUCCESS, "text/xml", "iso-8859-1", delay=0.02)
    with XmlGatewayServer(default=slow) as gateway:
        config = tmp_path / "patronlink.toml"
        config.write_text(CONFIG.format(agency=AGENCY, gateway=gateway.url), encoding="utf-8")
        check_cli(["config", "apply", str(config)], env)
        db = Database(make_engine(Settings(database_url=own_database)))
        try:
            texts = [f"Outage test message {n:04d}" for n in range(MESSAGES)]
            now = system_clock()
            with db.transaction() as repos:
                agency = require_agency(repos, AGENCY)
                repos.outbox.enqueue(
                    [
                        prepare(repos, agency, "52903991", t, now=now, send_at=None, origin="staff")
                        for t in texts
                    ],
                    now,
                )
        finally:
            db.dispose()

        worker = start(["worker"], env, log)
        red_during = False
        stale_metrics = ""
        try:
            _wait(lambda: _readyz(port) == 200, "worker ready", worker, log)
            _wait(lambda: len(gateway.requests) >= 200, "first sends", worker, log)
            before = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text  # a scrape
            assert 'patronlink_sms_agency_due{agency="DK-761500"}' in before, before

            # The outage: no connection for OUTAGE_SECONDS.
            _allow_connections(admin, name, False)
            outage_started = time.monotonic()
            outage_from = dt.datetime.now(dt.UTC)
            try:
                _cut_connections(admin, name)
                while time.monotonic() - outage_started < OUTAGE_SECONDS:
                    if _readyz(port) == 503:
                        red_during = True
                        stale_metrics = httpx.get(
                            f"http://127.0.0.1:{port}/metrics", timeout=5
                        ).text
                    time.sleep(0.5)
                during = len(gateway.requests)
            finally:
                _allow_connections(admin, name, True)
                outage_to = dt.datetime.now(dt.UTC)
            _wait(lambda: _readyz(port) == 200, "ready after the outage", worker, log)
            _wait(lambda: len(gateway.requests) >= during + 200, "sends go on", worker, log)

            # The burst: connections cut again and again while texts go out.
            for _ in range(BURST):
                _cut_connections(admin, name)
                time.sleep(0.3)
            _wait(
                lambda: _statuses(own_database) == {"sent": MESSAGES},
                "every text sent",
                worker,
                log,
            )
            _wait(lambda: _readyz(port) == 200, "ready at the end", worker, log)
            worker.terminate()
            worker.wait(30)
        finally:
            stop(worker)
            admin.dispose()
        received = collections.Counter(r.form["message"] for r in gateway.requests)

    assert worker.returncode == 0, log.read_text(errors="replace")
    assert red_during, "/readyz stayed green while the database refused connections"
    # The queue gauges were kept, marked stale, while the database was away.
    assert "patronlink_sms_queue_stale 1.0" in stale_metrics, stale_metrics
    assert 'patronlink_sms_agency_due{agency="DK-761500"}' in stale_metrics, stale_metrics
    assert 'patronlink_worker_loop_ok{loop="dispatcher"} 0.0' in stale_metrics, stale_metrics
    assert set(received) == set(texts), "a text never reached the gateway"
    repeated = {t: n for t, n in received.items() if n > 1}
    assert len(repeated) <= MAX_IN_FLIGHT, f"{len(repeated)} texts sent more than once"

    lines = _log_lines(log)
    errors = [line for line in lines if line["level"] in ("error", "critical")]
    recovered = [line for line in lines if "recovered after" in str(line["event"])]
    # Each episode is one error line (with its traceback as text) and one recovery line.
    assert errors, "the outage was not logged"
    assert all("loop" in line for line in errors), errors
    assert all("Traceback" in str(line.get("exception", "")) for line in errors), errors
    assert len(errors) == len(recovered), (errors, recovered)
    # The 8 s outage was one episode per loop that met it, however often it was retried.
    in_outage = [
        line
        for line in errors
        if outage_from <= dt.datetime.fromisoformat(str(line["timestamp"])) <= outage_to
    ]
    per_loop = collections.Counter(str(line["loop"]) for line in in_outage)
    assert per_loop["dispatcher"] == 1, in_outage
    assert max(per_loop.values()) == 1, in_outage
    print(  # shown with -s / -rP
        f"{len(gateway.requests)} requests, {len(repeated)} repeated (bound {MAX_IN_FLIGHT}); "
        f"{len(errors)} episode(s) in all"
    )
