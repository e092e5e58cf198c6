"""Patron import benchmark: FOLIO JSON from a loopback HTTP source into SQLite and PostgreSQL.

    .venv/bin/python -m bench.import [--records 100000] [--repeats 3] [--rss-records 1000000]

For each backend: import ``--records`` users into an empty database (create), again with every
tenth user changed (10% changed), and again unchanged; then a raw ``executemany`` upsert of the
same rows through the driver (no parsing, no validation, no diff) as the baseline of the same run.
Medians of ``--repeats``. Last, the peak RSS of an import of ``--rss-records`` users (the importing
process and its reader process).
PostgreSQL is used when ``PATRONLINK_TEST_POSTGRES_URL`` is set (a scratch database is created).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, make_url, text
from tests.support.feeds import folio_stream, folio_user

from patronlink.config.schema import AgencySettings, ImportSourceConfig
from patronlink.domain.agency import Agency
from patronlink.domain.import_runs import RunStatus, Trigger
from patronlink.services.import_patrons import run_import
from patronlink.settings import Settings
from patronlink.storage.database import Database
from patronlink.storage.engine import make_engine
from patronlink.storage.migrate import upgrade

AGENCY = "DK-761500"
SOURCE = "bench"


def clock() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def write_feed(path: Path, records: int, changed_every: int = 0) -> None:
    with path.open("wb") as out:
        for chunk in folio_stream(records, changed_every=changed_every):
            out.write(chunk)


@contextmanager
def serve_directory(directory: Path) -> Iterator[str]:
    """A loopback HTTP server streaming the files of ``directory``."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            path = directory / self.path.lstrip("/")
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(path.stat().st_size))
            self.end_headers()
            with path.open("rb") as body:
                while chunk := body.read(1 << 20):
                    self.wfile.write(chunk)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


@contextmanager
def database(backend: str, directory: Path) -> Iterator[Database]:
    if backend == "sqlite":
        url = f"sqlite:///{directory / f'bench-{uuid.uuid4().hex[:8]}.db'}"
        db = Database(make_engine(Settings(database_url=url)))
        upgrade(db.engine)
        try:
            yield db
        finally:
            db.dispose()
        return
    base = make_url(Settings(database_url=os.environ["PATRONLINK_TEST_POSTGRES_URL"]).database_url)
    name = f"patronlink_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    db = Database(
        make_engine(Settings(database_url=base.set(database=name).render_as_string(False)))
    )
    try:
        upgrade(db.engine)
        yield db
    finally:
        db.dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def add_source(db: Database, url: str) -> None:
    config = ImportSourceConfig.model_validate(
        {"id": SOURCE, "agency": AGENCY, "url": url, "format": "folio-json",
         "deactivate_missing": True}
    )  # fmt: skip
    with db.transaction() as repos:
        repos.agencies.upsert(Agency(id=AGENCY, name="Bench"), AgencySettings(), clock())
        repos.import_sources.upsert(
            SOURCE, AGENCY, config.model_dump(mode="json", exclude={"id", "agency"}), clock()
        )


def timed_import(db: Database, expect: str, records: int) -> float:
    start = time.perf_counter()
    report = run_import(db, SOURCE, trigger=Trigger.CLI, clock=clock, environ={})
    elapsed = time.perf_counter() - start
    assert report.status is RunStatus.SUCCEEDED, report.message
    assert getattr(report.counts, expect) >= records * (0.1 if expect == "updated" else 1)
    return elapsed


def baseline_rows(records: int) -> list[tuple[Any, ...]]:
    """The rows the import writes, built directly (what a hand-written loader would send)."""
    now = clock()
    rows = []
    for i in range(records):
        u = folio_user(i)
        p = u["personal"]
        rows.append(
            (AGENCY, u["barcode"], f"{p['firstName']} {p['lastName']}", "active",
             dt.date(2027, 6, 30), p["email"], "+4526" + f"{i % 1000000:06d}", False,
             json.dumps([f"Vejen {i}", "Horsens"]), "8700", SOURCE, u["externalSystemId"],
             json.dumps({"username": u["username"]}), now, now)
        )  # fmt: skip
    return rows


def baseline_upsert(db: Database, rows: list[tuple[Any, ...]]) -> float:
    """A raw executemany upsert through the driver, in one transaction."""
    postgres = db.engine.dialect.name == "postgresql"
    mark = "%s" if postgres else "?"
    columns = (
        "agency_id, patron_id, name, status, expiry_date, email, sms_number, want_sms, "
        "address_lines, zip, source, external_id, extra, created_at, updated_at"
    )
    upsert = (
        "ON CONFLICT (agency_id, patron_id) DO UPDATE SET name = excluded.name, "
        "email = excluded.email, updated_at = excluded.updated_at"
    )
    marks = ", ".join([mark] * 15)
    sql = f"INSERT INTO patrons ({columns}) VALUES ({marks}) {upsert}"  # noqa: S608 - no data
    if not postgres:
        rows = [(*r[:13], r[13].isoformat(), r[14].isoformat()) for r in rows]
    with db.engine.connect() as conn:
        raw: Any = conn.connection.dbapi_connection
        start = time.perf_counter()
        cursor = raw.cursor()
        if not postgres:
            cursor.execute("BEGIN")
        cursor.executemany(sql, rows)
        raw.commit()
        elapsed = time.perf_counter() - start
    with db.engine.begin() as conn:
        conn.execute(text("DELETE FROM patrons WHERE source = :s"), {"s": SOURCE})
    return elapsed


def bench_backend(backend: str, records: int, repeats: int, work: Path, url: str) -> dict[str, Any]:
    times: dict[str, list[float]] = {"create": [], "changed": [], "unchanged": [], "baseline": []}
    rows = baseline_rows(records)
    for _ in range(repeats):
        with database(backend, work) as db:
            add_source(db, f"{url}/feed.json")
            times["create"].append(timed_import(db, "created", records))
            add_source(db, f"{url}/changed.json")
            times["changed"].append(timed_import(db, "updated", records))
            times["unchanged"].append(timed_import(db, "unchanged", records))
        with database(backend, work) as db:
            add_source(db, f"{url}/feed.json")
            times["baseline"].append(baseline_upsert(db, rows))
    medians = {k: statistics.median(v) for k, v in times.items()}
    ratios = {f"{k}_ratio": medians["baseline"] / medians[k] for k in times if k != "baseline"}
    return {"backend": backend, **{f"{k}_per_s": records / v for k, v in medians.items()}, **ratios}


def _children_peak_mb(stop: threading.Event, peak: list[float]) -> None:
    """The largest VmHWM of this process's children (the feed's reader process), sampled.

    Not ``RUSAGE_CHILDREN``: a child started by vfork is charged the parent's high-water mark
    at its exec. VmHWM is the child's own peak since its exec and never falls, so the last
    sample before it ends is its peak (it does not grow once the feed has ended).
    """
    me = os.getpid()
    while not stop.wait(0.2):
        for children in Path(f"/proc/{me}/task").glob("*/children"):
            for pid in children.read_text().split():
                try:
                    status = Path(f"/proc/{pid}/status").read_text()
                except OSError:
                    continue  # it ended meanwhile
                for line in status.splitlines():
                    if line.startswith("VmHWM:"):
                        peak[0] = max(peak[0], int(line.split()[1]) / 1024)


def child_rss(url: str, directory: str) -> None:
    """Run in a subprocess: import the feed at ``url`` into a fresh SQLite; print peak RSS."""
    import resource

    stop, reader_peak = threading.Event(), [0.0]
    sampler = threading.Thread(target=_children_peak_mb, args=(stop, reader_peak), daemon=True)
    sampler.start()
    with database("sqlite", Path(directory)) as db:
        add_source(db, url)
        start = time.perf_counter()
        report = run_import(db, SOURCE, trigger=Trigger.CLI, clock=clock, environ={})
        elapsed = time.perf_counter() - start
    stop.set()
    sampler.join()
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result = {"records": report.counts.created, "seconds": elapsed}
    print(json.dumps({**result, "peak_mb": peak_mb, "reader_mb": reader_peak[0]}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rss-records", type=int, default=1_000_000)
    parser.add_argument("--child-rss", nargs=2, metavar=("URL", "DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_rss:
        child_rss(*args.child_rss)
        return
    backends = ["sqlite"] + (
        ["postgresql"] if os.environ.get("PATRONLINK_TEST_POSTGRES_URL") else []
    )
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        write_feed(work / "feed.json", args.records)
        write_feed(work / "changed.json", args.records, changed_every=10)
        with serve_directory(work) as url:
            print(f"patron import, {args.records:,} FOLIO JSON users over loopback HTTP, "
                  f"median of {args.repeats}")  # fmt: skip
            print(f"{'backend':<11} {'create/s':>9} {'10% chg/s':>10} {'unchanged/s':>12} "
                  f"{'raw upsert/s':>13}  ratios vs raw (create, changed, unchanged)")  # fmt: skip
            for backend in backends:
                r = bench_backend(backend, args.records, args.repeats, work, url)
                print(f"{backend:<11} {r['create_per_s']:>9,.0f} {r['changed_per_s']:>10,.0f} "
                      f"{r['unchanged_per_s']:>12,.0f} {r['baseline_per_s']:>13,.0f}  "
                      f"{r['create_ratio']:.2f}, {r['changed_ratio']:.2f}, "
                      f"{r['unchanged_ratio']:.2f}")  # fmt: skip
            if args.rss_records:
                write_feed(work / "big.json", args.rss_records)
                out = subprocess.run(
                    [sys.executable, "-m", "bench.import", "--child-rss", f"{url}/big.json", tmp],
                    capture_output=True, text=True, check=True,
                )  # fmt: skip
                result = json.loads(out.stdout.strip().splitlines()[-1])
                total = result["peak_mb"] + result["reader_mb"]
                print(f"peak RSS importing {result['records']:,} users into SQLite: "
                      f"{total:.0f} MB = {result['peak_mb']:.0f} MB + reader process "
                      f"{result['reader_mb']:.0f} MB ({result['seconds']:.0f} s, "
                      f"{result['records'] / result['seconds']:,.0f}/s)")  # fmt: skip


if __name__ == "__main__":
    main()
