"""``patronlink worker --metrics-port``: the worker can be watched (issue 14, item 2).

A real worker process sends through a real XML gateway on 127.0.0.1 that answers 503 to the first
texts. Its port answers ``/healthz``, ``/readyz`` and ``/metrics`` (no token: a dedicated port is
private); the counters are by agency and driver, the queue gauges by agency, the gateway's
failures in a row a gauge; the outage of the gateway is one warning line, its return one line.
"""

from __future__ import annotations

import json
import os
import re
import socket
import time
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from patronlink.services.agencies import require_agency
from patronlink.services.clock import system_clock
from patronlink.services.outbox import prepare
from patronlink.settings import Settings
from patronlink.storage.database import Database
from tests.support.gateway_servers import Reply, XmlGatewayServer
from tests.support.processes import check_cli, free_port, run_cli, start, stop

AGENCY = "DK-761500"
TEXTS = 20
FAILURES = 12  # the gateway's 503s before it answers again
WARN_AFTER = 5

CONFIG = """\
[[agencies]]
id = "{agency}"
name = "Horsens Bibliotek"

[agencies.sms]
driver = "xml"
url = "{gateway}"
username = "user1"
password = "port-sms"
concurrency = 1
max_attempts = 10
"""


def _samples(body: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def test_worker_port_serves_health_readiness_and_metrics_by_agency(
    db: Database, settings: Settings, tmp_path: Path
) -> None:
    port = free_port()
    env = {
        **os.environ,
        "PATRONLINK_DATABASE_URL": settings.database_url,
        "PATRONLINK_DISPATCH_POLL_SECONDS": "0.1",
        "PATRONLINK_RETRY_BASE_SECONDS": "0.05",
        "PATRONLINK_RETRY_CAP_SECONDS": "0.1",
        "PATRONLINK_GATEWAY_FAILURES_BEFORE_WARNING": str(WARN_AFTER),
    }
    log = tmp_path / "worker.log"
    with XmlGatewayServer(default=XmlGatewayServer.spec_success()) as gateway:
        gateway.enqueue(*[Reply(503, "busy") for _ in range(FAILURES)])
        config = tmp_path / "patronlink.toml"
        config.write_text(CONFIG.format(agency=AGENCY, gateway=gateway.url), encoding="utf-8")
        check_cli(["config", "apply", str(config)], env)
        now = system_clock()
        with db.transaction() as repos:
            agency = require_agency(repos, AGENCY)
            repos.outbox.enqueue(
                [
                    prepare(repos, agency, "52903991", f"t{n}", now=now, send_at=None, origin="x")
                    for n in range(TEXTS)
                ],
                now,
            )
        base = f"http://127.0.0.1:{port}"
        worker = start(["worker", "--metrics-port", str(port)], env, log)
        try:
            deadline = time.monotonic() + 60
            while True:
                assert worker.poll() is None, log.read_text(errors="replace")
                assert time.monotonic() < deadline, log.read_text(errors="replace")
                try:
                    body = httpx.get(f"{base}/metrics", timeout=5).text
                except httpx.TransportError:
                    time.sleep(0.1)
                    continue
                now_seen = _samples(body)
                sent = now_seen.get(
                    ("patronlink_sms_sent_total", (("agency", AGENCY), ("driver", "xml")))
                )
                # Sent, and the outcomes written (they go to the database in batches).
                if (
                    sent == TEXTS
                    and now_seen.get(("patronlink_sms_messages", (("status", "sent"),))) == TEXTS
                ):
                    break
                time.sleep(0.1)
            health = httpx.get(f"{base}/healthz", timeout=5)
            ready = httpx.get(f"{base}/readyz", timeout=5)
            worker.terminate()
            worker.wait(30)
        finally:
            stop(worker)

    assert worker.returncode == 0, log.read_text(errors="replace")
    assert health.json() == {"status": "ok"}
    assert ready.status_code == 200, ready.text
    samples = _samples(body)
    by_agency = (("agency", AGENCY), ("driver", "xml"))
    assert samples[("patronlink_sms_retried_total", by_agency)] == FAILURES
    assert samples[("patronlink_sms_gateway_consecutive_failures", by_agency)] == 0
    assert samples[("patronlink_sms_queue_stale", ())] == 0
    assert samples[("patronlink_sms_messages", (("status", "sent"),))] == TEXTS
    assert samples[("patronlink_sms_queue_due", ())] == 0
    assert samples[("patronlink_worker_loop_ok", (("loop", "dispatcher"),))] == 1
    assert samples[("patronlink_worker_loop_ok", (("loop", "scheduler"),))] == 1

    lines = [json.loads(raw) for raw in log.read_text().splitlines() if raw.startswith("{")]
    warnings = [line for line in lines if line["level"] == "warning"]
    assert len(warnings) == 1, warnings
    assert warnings[0]["agency"] == AGENCY
    assert re.search(rf"failed {WARN_AFTER} texts in a row", warnings[0]["event"]), warnings
    back = [line for line in lines if "answers again" in str(line["event"])]
    assert len(back) == 1, back
    assert back[0]["failures"] == FAILURES, back


def test_worker_port_gauges_stay_present_while_the_queue_read_fails(
    db: Database, settings: Settings, tmp_path: Path
) -> None:
    """A due text's gauges, scraped once, stay (stale, marked) when the database is away."""
    from prometheus_client import CollectorRegistry, generate_latest

    from patronlink.worker.metrics import QueueDepthCollector

    check_cli(
        ["config", "apply", str(_write_config(tmp_path, "http://127.0.0.1:9/"))],
        {**os.environ, "PATRONLINK_DATABASE_URL": settings.database_url},
    )
    now = system_clock()
    with db.transaction() as repos:
        agency = require_agency(repos, AGENCY)
        repos.outbox.enqueue(
            [prepare(repos, agency, "52903991", "due", now=now, send_at=None, origin="x")], now
        )
    registry = CollectorRegistry()
    registry.register(QueueDepthCollector(db, system_clock))
    fresh = _samples(generate_latest(registry).decode())
    assert fresh[("patronlink_sms_agency_due", (("agency", AGENCY),))] == 1
    assert fresh[("patronlink_sms_queue_stale", ())] == 0

    _break(db)
    time.sleep(0.01)
    stale = _samples(generate_latest(registry).decode())
    assert stale[("patronlink_sms_queue_stale", ())] == 1
    assert stale[("patronlink_sms_agency_due", (("agency", AGENCY),))] == 1
    assert stale[("patronlink_sms_agency_oldest_due_seconds", (("agency", AGENCY),))] > 0


def _write_config(tmp_path: Path, gateway: str) -> Path:
    config = tmp_path / "patronlink.toml"
    config.write_text(CONFIG.format(agency=AGENCY, gateway=gateway), encoding="utf-8")
    return config


def _break(db: Database) -> None:
    """Make every further query fail as a lost database would: the engine's connections go,
    and new ones reach nothing (a port where nobody listens, or a file that is no database)."""
    db.engine.dispose()
    if db.engine.dialect.name == "sqlite":
        path = db.engine.url.database
        assert path is not None
        Path(path).write_bytes(b"this is not a database" * 100)
        for suffix in ("-wal", "-shm"):
            Path(path + suffix).unlink(missing_ok=True)
        return
    dead = free_port()  # a port nothing listens on, handed to no other test
    from sqlalchemy import create_engine

    db.engine = create_engine(db.engine.url.set(port=dead), pool_pre_ping=True)


def test_a_metrics_port_in_use_is_a_clear_error(settings: Settings) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        done = run_cli(
            ["worker", "--metrics-port", str(port)],
            {**os.environ, "PATRONLINK_DATABASE_URL": settings.database_url},
        )
    assert done.returncode == 2, done.stderr
    assert f"cannot listen on 127.0.0.1:{port} for metrics" in done.stderr
    assert "Traceback" not in done.stderr
