"""Renewal by SMS under load: latency and requests/s against /healthz of the same server.

``python -m bench.inbound [--patrons 100000] [--seconds 8] [--rounds 3] [--clients 32]
[--postgres URL]``

A real ``patronlink serve`` (no worker) holds 100,000 patrons on SQLite, and with ``--postgres``
(default: ``$PATRONLINK_TEST_POSTGRES_URL``) also in a fresh PostgreSQL database made for the run;
one sender's number is shared by a patron with three loans. Each request is a full renewal:
credentials, number lookup, decisions and reply texts queued. The text's prefix word changes on
every request so that the 120-second duplicate check does not turn requests into no-ops.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from sqlalchemy import insert

from bench.common import closed_loop, free_port, median, percentile, process
from bench.dispatch import create_pg, drop_pg
from patronlink.config.schema import AgencyConfig
from patronlink.domain.agency import Agency
from patronlink.services.configure import agency_settings
from patronlink.services.secrets import hash_password
from patronlink.settings import Settings
from patronlink.storage import tables
from patronlink.storage.database import Database
from patronlink.storage.engine import make_engine
from patronlink.storage.migrate import upgrade

AGENCY = "DK-761500"
PASSWORD = "bench-inbound-password"  # noqa: S105 - a benchmark's throwaway credential
SENDER = "52903991"


def prepare(url: str, patrons: int) -> None:
    engine = make_engine(Settings(database_url=url))
    upgrade(engine)
    db = Database(engine)
    now = dt.datetime.now(dt.UTC)
    config = AgencyConfig.model_validate(
        {"id": AGENCY, "name": "Bench", "renewal": {"sms_enabled": True}}
    )
    with db.transaction() as repos:
        repos.agencies.upsert(Agency(id=AGENCY, name="Bench"), agency_settings(config), now)
        repos.integration_users.set_password_hash(AGENCY, "sms", hash_password(PASSWORD))
    rows = [
        {
            "id": i + 1,
            "agency_id": AGENCY,
            "patron_id": f"{100000 + i}",
            "name": f"Låner {i}",
            "status": "active",
            "want_sms": True,
            "address_lines": [],
            "extra": {},
            "created_at": now,
            "updated_at": now,
        }
        for i in range(patrons)
    ]
    phones = [
        {
            "patron_pk": i + 1,
            "position": 0,
            "agency_id": AGENCY,
            "number": f"+452{i:07d}" if i else f"+45{SENDER}",
            "kind": "phone",
        }
        for i in range(patrons)
    ]
    with engine.begin() as conn:
        conn.execute(insert(tables.patrons), rows)
        conn.execute(insert(tables.patron_phones), phones)
        conn.execute(
            insert(tables.items),
            [
                {"id": n, "agency_id": AGENCY, "item_number": f"900{n}", "title": f"Bog {n}"}
                for n in (1, 2, 3)
            ],
        )
        conn.execute(
            insert(tables.loans),
            [
                {
                    "agency_id": AGENCY,
                    "patron_pk": 1,
                    "item_pk": n,
                    "loaned_at": now,
                    "due_date": now.date() + dt.timedelta(days=3),
                    "renewal_count": 0,
                }
                for n in (1, 2, 3)
            ],
        )
    engine.dispose()


async def load(url: str, seconds: float, clients: int, inbound: bool) -> tuple[float, list[float]]:
    counter = 0
    deadline = time.perf_counter() + seconds

    def renewal(session: aiohttp.ClientSession) -> Any:
        nonlocal counter
        counter += 1
        params = {
            "user": "sms",
            "password": PASSWORD,
            "shortcode": "1910",
            "countrycode": "45",
            "number": SENDER,
            "text": f"b{counter} forny alle",
        }
        return session.get(url, params=params)

    return await closed_loop(
        clients,
        lambda: time.perf_counter() < deadline,
        renewal if inbound else (lambda session: session.get(url)),
    )


@dataclass
class Figures:
    health: list[float] = field(default_factory=list)
    health_p99: list[float] = field(default_factory=list)
    renew: list[float] = field(default_factory=list)
    p50: list[float] = field(default_factory=list)
    p99: list[float] = field(default_factory=list)


def measure(db_url: str, args: argparse.Namespace) -> Figures:
    """Rounds of /healthz then renewal by SMS against one server on ``db_url``."""
    prepare(db_url, args.patrons)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, "PATRONLINK_DATABASE_URL": db_url, "PATRONLINK_LOG_LEVEL": "warning"}
    command = [sys.executable, "-m", "patronlink", "serve", "--port", str(port), "--no-worker"]
    figures = Figures()
    with process(command, f"{base}/healthz", env=env):
        asyncio.run(load(f"{base}/rest/{AGENCY}/smsgateway", 1.0, 4, inbound=True))  # warm
        for _ in range(args.rounds):
            rate, latencies = asyncio.run(
                load(f"{base}/healthz", args.seconds, args.clients, False)
            )
            figures.health.append(rate)
            figures.health_p99.append(percentile(latencies, 0.99) * 1000)
            rate, latencies = asyncio.run(
                load(f"{base}/rest/{AGENCY}/smsgateway", args.seconds, args.clients, True)
            )
            figures.renew.append(rate)
            figures.p50.append(percentile(latencies, 0.50) * 1000)
            figures.p99.append(percentile(latencies, 0.99) * 1000)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--patrons", type=int, default=100_000)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--postgres", default=os.environ.get("PATRONLINK_TEST_POSTGRES_URL"))
    args = parser.parse_args()
    results: dict[str, Figures] = {}
    with tempfile.TemporaryDirectory() as tmp:
        results["sqlite"] = measure(f"sqlite:///{Path(tmp) / 'bench.db'}", args)
    if args.postgres:
        pg_url, name = create_pg(args.postgres)
        try:
            results["postgresql"] = measure(pg_url, args)
        finally:
            drop_pg(args.postgres, name)
    print(
        f"inbound benchmark: {args.patrons} patrons, {args.clients} clients, "
        f"{args.rounds} rounds of {args.seconds:.0f} s, medians"
    )
    for backend, figures in results.items():
        health, renew = median(figures.health), median(figures.renew)
        print(
            f"  {backend:<10} /healthz        {health:>8.0f} req/s"
            f"                           p99 {median(figures.health_p99):.1f} ms"
        )
        print(
            f"  {backend:<10} renew by SMS    {renew:>8.0f} req/s   ratio {renew / health:.2f}"
            f"   p50 {median(figures.p50):.1f} ms   p99 {median(figures.p99):.1f} ms"
        )


if __name__ == "__main__":
    main()
