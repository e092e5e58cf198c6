"""Dispatch throughput: queued texts to a loopback XML gateway, against a raw HTTP loop.

``python -m bench.dispatch [--messages 20000] [--rounds 3] [--postgres URL]``

The baseline is the fastest plain client loop against the same server in the same run (aiohttp
and httpx are both measured); the figure of merit is dispatch messages/s divided by it.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import tempfile
import time
from pathlib import Path

import aiohttp
import httpx

from bench.common import free_port, gateway, median
from patronlink.config.schema import AgencyConfig
from patronlink.domain.agency import Agency
from patronlink.domain.dispatch import DispatchSettings
from patronlink.gateways.registry import build_gateway
from patronlink.services.configure import agency_settings
from patronlink.services.outbox import prepare
from patronlink.settings import Settings
from patronlink.storage.database import Database
from patronlink.storage.engine import make_engine
from patronlink.storage.migrate import upgrade
from patronlink.worker.dispatcher import Dispatcher

CONCURRENCY = 64
FORM = {"user": "u", "pass": "p", "number": "52903991", "message": "Hej", "charset": "UTF-8"}


async def raw_aiohttp(url: str, count: int) -> float:
    connector = aiohttp.TCPConnector(limit=CONCURRENCY)
    async with aiohttp.ClientSession(connector=connector) as session:
        remaining = count

        async def worker() -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                async with session.post(url, data=FORM) as response:
                    await response.read()

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        return count / (time.perf_counter() - start)


async def raw_httpx(url: str, count: int) -> float:
    limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
    async with httpx.AsyncClient(limits=limits) as client:
        remaining = count

        async def worker() -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                response = await client.post(url, data=FORM)
                response.read()

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        return count / (time.perf_counter() - start)


def prepare_database(url: str, gateway_url: str, count: int) -> Database:
    engine = make_engine(Settings(database_url=url))
    upgrade(engine)
    db = Database(engine)
    now = dt.datetime.now(dt.UTC)
    config = AgencyConfig.model_validate(
        {
            "id": "DK-761500",
            "name": "Bench",
            "sms": {
                "driver": "xml",
                "url": gateway_url,
                "username": "u",
                "password": "p",
                "concurrency": CONCURRENCY,
            },
        }
    )
    with db.transaction() as repos:
        agency = Agency(id="DK-761500", name="Bench")
        repos.agencies.upsert(agency, agency_settings(config), now)
        messages = [
            prepare(repos, agency, "52903991", f"Besked {i}", now=now, send_at=None, origin="bench")
            for i in range(count)
        ]
        repos.outbox.enqueue(messages, now)
    return db


async def dispatch(db: Database) -> tuple[float, int]:
    settings = DispatchSettings(batch_size=500, max_in_flight=CONCURRENCY * 4)
    dispatcher = Dispatcher(db, lambda: dt.datetime.now(dt.UTC), build_gateway, settings=settings)
    start = time.perf_counter()
    stats = await dispatcher.run(once=True)
    elapsed = time.perf_counter() - start
    await dispatcher.aclose()
    return stats.sent / elapsed, stats.sent


def create_pg(base: str) -> tuple[str, str]:
    from sqlalchemy import create_engine, make_url, text

    url = make_url(Settings(database_url=base).database_url)
    name = f"patronlink_bench_{os.getpid()}_{int(time.time())}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return url.set(database=name).render_as_string(hide_password=False), name


def drop_pg(base: str, name: str) -> None:
    from sqlalchemy import create_engine, make_url, text

    admin = create_engine(
        make_url(Settings(database_url=base).database_url), isolation_level="AUTOCOMMIT"
    )
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--postgres", default=os.environ.get("PATRONLINK_TEST_POSTGRES_URL"))
    args = parser.parse_args()
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    results: dict[str, list[float]] = {"aiohttp": [], "httpx": [], "sqlite": [], "postgresql": []}
    with gateway(port):
        for _ in range(args.rounds):
            results["aiohttp"].append(asyncio.run(raw_aiohttp(url, args.messages // 4)))
            results["httpx"].append(asyncio.run(raw_httpx(url, args.messages // 4)))
            with tempfile.TemporaryDirectory() as tmp:
                db = prepare_database(f"sqlite:///{Path(tmp) / 'bench.db'}", url, args.messages)
                rate, sent = asyncio.run(dispatch(db))
                assert sent == args.messages, f"sent {sent} of {args.messages}"
                results["sqlite"].append(rate)
                db.dispose()
            if args.postgres:
                pg_url, name = create_pg(args.postgres)
                try:
                    db = prepare_database(pg_url, url, args.messages)
                    rate, sent = asyncio.run(dispatch(db))
                    assert sent == args.messages
                    results["postgresql"].append(rate)
                    db.dispose()
                finally:
                    drop_pg(args.postgres, name)
    baseline_name = max(("aiohttp", "httpx"), key=lambda k: median(results[k]))
    baseline = median(results[baseline_name])
    print(f"dispatch benchmark: {args.messages} texts, {args.rounds} rounds, medians")
    for name, values in results.items():
        if values:
            print(
                f"  {name:<11} {median(values):>9.0f} /s   ratio to raw {baseline_name}: "
                f"{median(values) / baseline:.2f}"
            )


if __name__ == "__main__":
    main()
