"""Delivery reports under load: reports/s and latency against /healthz of the same server.

``python -m bench.dlr [--messages 20000] [--clients 32] [--rounds 1] [--servers 1]
[--postgres URL]``

A real ``patronlink serve`` (no worker) holds ``--messages`` sent texts of one LINK Mobility
agency, each waiting for its report, on SQLite and, with ``--postgres`` (default:
``$PATRONLINK_TEST_POSTGRES_URL``), in a fresh PostgreSQL database made for the run. First
``/healthz`` is measured for ``--seconds`` with the same clients, then every text's report (LINK's
published DLR JSON, ``resultCode`` 1001 and the text's ``refId``) is POSTed once by
``--clients`` concurrent clients with the integration user's Basic credentials. Goal (issue 16):
at least 0.3 of /healthz, p99 under 50 ms. With ``--rounds`` above 1 each backend is measured
that many times, each round with a fresh database and server, and the medians are printed.
With ``--servers`` above 1, that many ``serve`` processes share the database and the clients
take them in turn, request by request, as a load balancer would (both phases alike).

The clients run in this process, on the same machine as the server: beside each phase the CPU
time the clients and the server spent per request is printed, so that a run shows whether the
load generator, rather than the server, set the pace.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import datetime as dt
import itertools
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import func, insert, select

from bench.common import closed_loop, free_port, median, percentile, process
from bench.dispatch import create_pg, drop_pg
from patronlink.config.schema import AgencySettings
from patronlink.domain.agency import Agency
from patronlink.services.secrets import hash_password
from patronlink.settings import Settings
from patronlink.storage import tables
from patronlink.storage.database import Database
from patronlink.storage.engine import make_engine
from patronlink.storage.migrate import upgrade

AGENCY = "DK-761500"
PASSWORD = "bench-dlr-password"  # noqa: S105 - a benchmark's throwaway credential
SMS = {
    "driver": "linkmobility",
    "url": "https://wsx.sp247.net/sms/send",
    "username": "bench",
    "password": "bench",
    "platform_id": "COMMON_API",
    "platform_partner_id": "1",
    "source": "1910",
    "dlr_gate_id": "bench-gate",
}


def prepare(url: str, messages: int) -> list[int]:
    engine = make_engine(Settings(database_url=url))
    upgrade(engine)
    db = Database(engine)
    now = dt.datetime.now(dt.UTC)
    with db.transaction() as repos:
        repos.agencies.upsert(
            Agency(id=AGENCY, name="Bench"), AgencySettings.model_validate({"sms": SMS}), now
        )
        repos.integration_users.set_password_hash(AGENCY, "link", hash_password(PASSWORD))
    rows = [
        {
            "agency_id": AGENCY,
            "to_number": f"+452{i:07d}",
            "text": "Din bog er klar",
            "encoding": "GSM-7",
            "segments": 1,
            "status": "sent",
            "origin": "bench",
            "send_at": now,
            "next_attempt_at": now,
            "attempts": 1,
            "buffered": False,
            "driver": "linkmobility",
            "delivery": "pending",
            "created_at": now,
            "updated_at": now,
            "sent_at": now,
        }
        for i in range(messages)
    ]
    with engine.begin() as conn:
        for start in range(0, len(rows), 5000):
            conn.execute(insert(tables.messages), rows[start : start + 5000])
        ids = [int(i) for i in conn.execute(select(tables.messages.c.id)).scalars()]
    engine.dispose()
    return ids


def delivered(url: str) -> int:
    engine = make_engine(Settings(database_url=url))
    with engine.connect() as conn:
        stmt = select(func.count()).where(tables.messages.c.delivery == "delivered")
        count = int(conn.execute(stmt).scalar_one())
    engine.dispose()
    return count


def cpu_seconds(pid: int) -> float | None:
    """User and system CPU time of a process so far (Linux's /proc); None elsewhere."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def servers_cpu(pids: list[int]) -> float | None:
    times = [cpu_seconds(pid) for pid in pids]
    return None if any(t is None for t in times) else sum(t for t in times if t is not None)


def timed(
    pids: list[int], phase: Coroutine[Any, Any, tuple[float, list[float]]]
) -> dict[str, float]:
    """Run a load phase: requests/s and latencies, and the CPU time per request of the clients
    (this process) and of the servers."""
    server, client = servers_cpu(pids), time.process_time()
    rate, latencies = asyncio.run(phase)
    client = time.process_time() - client
    after = servers_cpu(pids)
    served = (after - server) if after is not None and server is not None else float("nan")
    return {
        "rate": rate,
        "p50": percentile(latencies, 0.50) * 1000,
        "p99": percentile(latencies, 0.99) * 1000,
        "client_us": client / len(latencies) * 1e6,
        "server_us": served / len(latencies) * 1e6,
    }


def report(message_id: int) -> bytes:
    # LINK's "Delivery Report Example" with our refId.
    return json.dumps(
        {
            "refId": str(message_id),
            "id": f"bench{message_id}",
            "operator": "dk.tdc",
            "sentTimestamp": "2026-11-30T09:37:35Z",
            "timestamp": "2026-11-30T09:37:40Z",
            "resultCode": 1001,
            "operatorResultCode": "2",
            "segments": 1,
            "gateCustomParameters": {},
            "customParameters": {},
        }
    ).encode()


async def health(urls: list[str], seconds: float, clients: int) -> tuple[float, list[float]]:
    deadline = time.perf_counter() + seconds
    turn = itertools.cycle(urls)
    return await closed_loop(
        clients, lambda: time.perf_counter() < deadline, lambda s: s.get(next(turn))
    )


async def reports(urls: list[str], ids: list[int], clients: int) -> tuple[float, list[float]]:
    pending = list(reversed(ids))
    token = base64.b64encode(f"link:{PASSWORD}".encode()).decode()
    headers = {"Authorization": f"Basic {token}", "Content-Type": "application/json"}
    turn = itertools.cycle(urls)
    return await closed_loop(
        clients,
        lambda: bool(pending),
        lambda s: s.post(next(turn), data=report(pending.pop()), headers=headers),
    )


def measure(db_url: str, args: argparse.Namespace) -> dict[str, float]:
    ids = prepare(db_url, args.messages)
    warm, ids = ids[: 50 * args.servers], ids[50 * args.servers :]
    env = {**os.environ, "PATRONLINK_DATABASE_URL": db_url, "PATRONLINK_LOG_LEVEL": "warning"}
    with contextlib.ExitStack() as stack:
        bases: list[str] = []
        pids: list[int] = []
        for _ in range(args.servers):
            port = free_port()
            base = f"http://127.0.0.1:{port}"
            command = [
                sys.executable,
                "-m",
                "patronlink",
                "serve",
                "--port",
                str(port),
                "--no-worker",
            ]
            pids.append(stack.enter_context(process(command, f"{base}/healthz", env=env)).pid)
            bases.append(base)
        dlr_urls = [f"{base}/sms/dlr/linkmobility/{AGENCY}" for base in bases]
        for n, url in enumerate(dlr_urls):  # argon2 once in each, connections open
            asyncio.run(reports([url], warm[50 * n : 50 * (n + 1)], 4))
        health_urls = [f"{base}/healthz" for base in bases]
        health_figures = timed(pids, health(health_urls, args.seconds, args.clients))
        figures = timed(pids, reports(dlr_urls, ids, args.clients))
    done = delivered(db_url)
    if done != args.messages:
        raise RuntimeError(f"{done} of {args.messages} texts delivered")
    return {
        "health": health_figures["rate"],
        "health_p99": health_figures["p99"],
        "health_client_us": health_figures["client_us"],
        "health_server_us": health_figures["server_us"],
        "reports": figures["rate"],
        "ratio": figures["rate"] / health_figures["rate"],
        "p50": figures["p50"],
        "p99": figures["p99"],
        "client_us": figures["client_us"],
        "server_us": figures["server_us"],
    }


def rounds(
    db_url: Callable[[], contextlib.AbstractContextManager[str]], args: argparse.Namespace
) -> dict[str, float]:
    """``measure`` ``--rounds`` times, each on a fresh database; the median of each figure."""
    runs: list[dict[str, float]] = []
    for _ in range(args.rounds):
        with db_url() as url:
            runs.append(measure(url, args))
    return {key: median([run[key] for run in runs]) for key in runs[0]}


@contextlib.contextmanager
def sqlite_db() -> Iterator[str]:
    with tempfile.TemporaryDirectory() as tmp:
        yield f"sqlite:///{Path(tmp) / 'bench.db'}"


@contextlib.contextmanager
def postgres_db(server: str) -> Iterator[str]:
    url, name = create_pg(server)
    try:
        yield url
    finally:
        drop_pg(server, name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=5.0, help="of /healthz")
    parser.add_argument("--rounds", type=int, default=1, help="medians of this many")
    parser.add_argument("--servers", type=int, default=1, help="serve processes, taken in turn")
    parser.add_argument("--postgres", default=os.environ.get("PATRONLINK_TEST_POSTGRES_URL"))
    args = parser.parse_args()
    results: dict[str, dict[str, float]] = {"sqlite": rounds(sqlite_db, args)}
    if args.postgres:
        server = args.postgres
        results["postgresql"] = rounds(lambda: postgres_db(server), args)
    medians = f", medians of {args.rounds} rounds" if args.rounds > 1 else ""
    servers = f", {args.servers} servers" if args.servers > 1 else ""
    print(
        f"delivery-report benchmark: {args.messages} reports, {args.clients} clients"
        f"{servers}{medians}"
    )
    for backend, f in results.items():
        print(
            f"  {backend:<10} /healthz        {f['health']:>8.0f} req/s"
            f"                           p99 {f['health_p99']:.1f} ms"
            f"   CPU/request: clients {f['health_client_us']:.0f} µs,"
            f" server {f['health_server_us']:.0f} µs"
        )
        print(
            f"  {backend:<10} LINK reports    {f['reports']:>8.0f} req/s"
            f"   ratio {f['ratio']:.2f}"
            f"   p50 {f['p50']:.1f} ms   p99 {f['p99']:.1f} ms"
            f"   CPU/request: clients {f['client_us']:.0f} µs, server {f['server_us']:.0f} µs"
        )


if __name__ == "__main__":
    main()
