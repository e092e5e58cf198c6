"""Scale-out: texts/s with one ``patronlink worker`` process against two, on PostgreSQL.

``python -m bench.scaleout [--messages 20000] [--rounds 3] [--postgres URL]``

Each round queues the same number of texts in a fresh PostgreSQL database twice, and lets first
one, then two real ``patronlink worker`` processes deliver them to the loopback XML gateway (an
aiohttp server in its own process). The clock runs from the first text sent to the last, so the
processes' start-up is not counted. The figure of merit is the two-worker rate divided by the
one-worker rate of the same round (medians of the rounds are printed). Both workers must have
sent texts, and every text exactly once.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

from sqlalchemy import func, select

from bench.common import free_port, gateway, median
from bench.dispatch import create_pg, drop_pg, prepare_database
from patronlink.storage import tables
from patronlink.storage.database import Database

PATRONLINK = [sys.executable, "-m", "patronlink"]
TIMEOUT_SECONDS = 600


def counts(db: Database) -> dict[str, int]:
    m = tables.messages
    with db.engine.connect() as conn:
        rows = conn.execute(select(m.c.status, func.count()).group_by(m.c.status)).all()
    return {str(s): int(n) for s, n in rows}


def per_worker(db: Database) -> list[int]:
    a = tables.message_attempts
    with db.engine.connect() as conn:
        rows = conn.execute(
            select(a.c.worker, func.count()).where(a.c.outcome == "sent").group_by(a.c.worker)
        ).all()
    return sorted((int(n) for _, n in rows), reverse=True)


def deliver(url: str, workers: int, total: int, db: Database) -> tuple[float, list[int]]:
    """Start ``workers`` worker processes; texts/s from the first text sent to the last."""
    env = {
        **os.environ,
        "PATRONLINK_DATABASE_URL": url,
        "PATRONLINK_DISPATCH_POLL_SECONDS": "0.05",
        "PATRONLINK_LOG_LEVEL": "warning",
    }
    procs = [
        subprocess.Popen(
            [*PATRONLINK, "worker"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        for _ in range(workers)
    ]
    try:
        deadline = time.monotonic() + TIMEOUT_SECONDS
        first: float | None = None
        while True:
            sent = counts(db).get("sent", 0)
            now = time.perf_counter()
            if first is None and sent > 0:
                first, first_sent = now, sent
            if sent >= total:
                break
            if any(p.poll() is not None for p in procs):
                raise RuntimeError("a worker exited")
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {sent} of {total} sent in {TIMEOUT_SECONDS} s")
            time.sleep(0.02)
        assert first is not None
        return (total - first_sent) / (now - first), per_worker(db)
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--postgres", default=os.environ.get("PATRONLINK_TEST_POSTGRES_URL"))
    args = parser.parse_args()
    if not args.postgres:
        sys.exit("bench.scaleout needs PostgreSQL: --postgres URL or PATRONLINK_TEST_POSTGRES_URL")
    port = free_port()
    gateway_url = f"http://127.0.0.1:{port}/"
    rates: dict[int, list[float]] = {1: [], 2: []}
    ratios: list[float] = []
    with gateway(port):
        for round_number in range(args.rounds):
            for workers in (1, 2):
                url, name = create_pg(args.postgres)
                try:
                    db = prepare_database(url, gateway_url, args.messages)
                    rate, shares = deliver(url, workers, args.messages, db)
                    assert sum(shares) == args.messages, f"{sum(shares)} sends, not one per text"
                    assert len(shares) == workers, f"only {len(shares)} worker(s) sent texts"
                    db.dispose()
                finally:
                    drop_pg(args.postgres, name)
                rates[workers].append(rate)
                print(
                    f"  round {round_number + 1}: {workers} worker(s) {rate:>7.0f} texts/s, "
                    f"texts per worker {shares}",
                    flush=True,
                )
            ratios.append(rates[2][-1] / rates[1][-1])
    print(f"scale-out benchmark: {args.messages} texts, {args.rounds} rounds, medians")
    print(f"  1 worker   {median(rates[1]):>7.0f} texts/s   1.00")
    print(f"  2 workers  {median(rates[2]):>7.0f} texts/s   {median(ratios):.2f} (ratio to 1)")


if __name__ == "__main__":
    main()
