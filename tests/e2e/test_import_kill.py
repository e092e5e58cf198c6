"""An import SIGKILLed part-way is either wholly applied or not at all, and blocks nothing.

Real processes on both backends: ``patronlink import run SOURCE`` killed at seeded points of its
feed (which a loopback source sends slowly, in pieces) and once just after the feed ended; then a
scheduled run killed inside ``patronlink worker``. After each kill the patrons are exactly as
before the run or exactly as after a complete run of the same feed; the killed run does not stay
``running`` (the next claim or the worker's sweep marks it failed once its short lease expires);
and the next run succeeds.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from patronlink.settings import Settings
from patronlink.storage import tables
from patronlink.storage.database import Database
from patronlink.storage.import_runs import INTERRUPTED
from tests.support.feeds import folio_body, folio_user
from tests.support.processes import check_cli, run_cli, start, stop
from tests.support.source_server import Feed, SourceServer, source_server

pytestmark = pytest.mark.slow  # a long fault-injection run: `make long` (CI runs it)

AGENCY = "DK-761500"
SOURCE = "students"
LEASE_SECONDS = 2
CHUNK = 32 * 1024
CHUNK_DELAY = 0.04  # about 1.5 s per feed
# Two feeds that differ in every way an import can change patrons: 200 new, 200 missing (and so
# deactivated), every fourth e-mail address changed.
FEED_A = folio_body([folio_user(i) for i in range(2000)])
FEED_B = folio_body([folio_user(i, variant=1 if i % 4 == 0 else 0) for i in range(200, 2200)])

CONFIG = """\
[[agencies]]
id = "{agency}"
name = "Horsens Bibliotek"

[[import_sources]]
id = "{source}"
agency = "{agency}"
url = "{url}/patrons.json"
format = "folio-json"
schedule = "* * * * * */2"  # croniter's sixth field: every two seconds (the worker phase)
max_deactivate_fraction = 0.25
"""

Snapshot = list[tuple[Any, ...]]


def snapshot(db: Database) -> Snapshot:
    """Every patron (without its timestamps) and phone row: what an import changes."""
    p = tables.patrons
    columns = [c for c in p.c if c.name not in ("created_at", "updated_at")]
    with db.engine.connect() as conn:
        rows = [tuple(r) for r in conn.execute(select(*columns).order_by(p.c.id))]
        phones = tables.patron_phones
        rows += [
            tuple(r)
            for r in conn.execute(select(phones).order_by(phones.c.patron_pk, phones.c.position))
        ]
    return rows


def runs(db: Database) -> list[Any]:
    r = tables.import_runs
    with db.engine.connect() as conn:
        return list(conn.execute(select(r).order_by(r.c.id)))


def run_by_id(db: Database, run_id: int) -> Any:
    return next(r for r in runs(db) if r.id == run_id)


def wait_for_feed(
    server: SourceServer, request: int, fraction: float, process: subprocess.Popen[bytes], log: Path
) -> None:
    """Until request number ``request`` has been sent ``fraction`` of the body."""
    total = len(server.feeds["/patrons.json"].body)
    deadline = time.monotonic() + 60
    while len(server.sent) <= request or server.sent[request] < fraction * total:
        assert process.poll() is None, f"exited early:\n{log.read_text(errors='replace')}"
        assert time.monotonic() < deadline, "the source was not read in 60 s"
        time.sleep(0.005)


def wait_for_change(
    db: Database, before: Snapshot, process: subprocess.Popen[bytes], log: Path
) -> None:
    deadline = time.monotonic() + 60
    while snapshot(db) == before:
        assert process.poll() is None, f"exited early:\n{log.read_text(errors='replace')}"
        assert time.monotonic() < deadline, "the import committed nothing in 60 s"


def complete_run(env: dict[str, str]) -> tuple[int, int]:
    """``import run`` until the killed run's hold expires; (exit code, refusals while it held)."""
    refused = 0
    deadline = time.monotonic() + 60
    while True:
        done = run_cli(["import", "run", SOURCE], env)
        if "in progress" not in done.stderr:
            return done.returncode, refused
        refused += 1
        assert time.monotonic() < deadline, "the killed run held its source for 60 s"
        time.sleep(0.5)


def kill_points(backend: str) -> list[tuple[str, float]]:
    rng = random.Random(f"import-kill-{backend}")  # fixed seed: the same points every run
    return [
        ("feed", rng.uniform(0.05, 0.95)),
        ("feed", rng.uniform(0.05, 0.95)),
        ("after the feed", rng.uniform(0.0, 0.6)),
        ("at the commit", 0.0),  # as soon as the patrons change: before the outcome is recorded
    ]


def test_killed_imports_are_all_or_nothing_and_block_nothing(
    db: Database, settings: Settings, backend: str, tmp_path: Path
) -> None:
    env = {
        **os.environ,
        "PATRONLINK_DATABASE_URL": settings.database_url,
        "PATRONLINK_IMPORT_LEASE_SECONDS": str(LEASE_SECONDS),
        "PATRONLINK_SCHEDULER_INTERVAL_SECONDS": "0.5",
        "PATRONLINK_DISPATCH_POLL_SECONDS": "0.5",
    }
    log = tmp_path / "processes.log"
    outcomes: list[str] = []
    with source_server() as server:
        feed = Feed(body=FEED_A, chunk=CHUNK, chunk_delay=CHUNK_DELAY)
        server.feeds["/patrons.json"] = feed
        config = tmp_path / "patronlink.toml"
        config.write_text(CONFIG.format(agency=AGENCY, source=SOURCE, url=server.url))
        check_cli(["config", "apply", str(config)], env)
        check_cli(["import", "run", SOURCE], env)

        for number, (where, at) in enumerate(kill_points(backend)):
            feed.body = FEED_B if number % 2 == 0 else FEED_A
            before = snapshot(db)
            request = len(server.sent)
            importer = start(["import", "run", SOURCE], env, log)
            try:
                if where == "feed":
                    wait_for_feed(server, request, at, importer, log)
                elif where == "after the feed":
                    wait_for_feed(server, request, 1.0, importer, log)
                    time.sleep(at)
                else:
                    wait_for_feed(server, request, 1.0, importer, log)
                    wait_for_change(db, before, importer, log)
                importer.send_signal(signal.SIGKILL)
                importer.wait(10)
            finally:
                stop(importer)
            killed_run = runs(db)[-1]
            at_kill = snapshot(db)
            code, refused = complete_run(env)
            assert code == 0, f"the run after kill {number} did not succeed"
            after = snapshot(db)
            assert after != before, "the feed changed nothing: the kill tested nothing"
            assert at_kill in (before, after), f"kill {number} ({where} {at:.2f}) half-applied"
            settled = run_by_id(db, killed_run.id)
            assert settled.status != "running", "the killed run stayed 'running'"
            if killed_run.status == "running":
                assert (settled.status, settled.message) == ("failed", INTERRUPTED)
            assert runs(db)[-1].status == "succeeded"
            outcomes.append(
                f"{where} {at:.2f}: {'none' if at_kill == before else 'all'} applied, "
                f"run {killed_run.status} -> {settled.status}, {refused} refusal(s)"
            )

        # A scheduled run, killed inside the worker, then the worker restarted.
        feed.body = FEED_B if feed.body is FEED_A else FEED_A
        before = snapshot(db)
        at = random.Random(f"worker-import-kill-{backend}").uniform(0.05, 0.95)
        request = len(server.sent)
        last_run = runs(db)[-1].id
        worker = start(["worker"], env, log)
        try:
            wait_for_feed(server, request, at, worker, log)
            worker.send_signal(signal.SIGKILL)
            worker.wait(10)
        finally:
            stop(worker)
        at_kill = snapshot(db)
        killed = [r for r in runs(db) if r.id > last_run]
        assert [r.trigger for r in killed] == ["schedule"]
        worker = start(["worker"], env, log)
        try:
            deadline = time.monotonic() + 60
            while (
                not any(r.id > killed[0].id and r.status == "succeeded" for r in runs(db))
                or run_by_id(db, killed[0].id).status == "running"
            ):
                assert worker.poll() is None, log.read_text(errors="replace")
                assert time.monotonic() < deadline, f"no scheduled run succeeded: {runs(db)}"
                time.sleep(0.2)
        finally:
            stop(worker)
        after = snapshot(db)
        assert at_kill in (before, after), "the scheduled run killed in the worker half-applied"
        assert after != before
        assert run_by_id(db, killed[0].id).message == INTERRUPTED
        due = [r.due_at for r in runs(db) if r.trigger == "schedule"]
        assert len(due) == len(set(due)), "a due time ran twice"
        assert worker.returncode == 0, log.read_text(errors="replace")
        outcomes.append(f"worker {at:.2f}: {'none' if at_kill == before else 'all'} applied")
    print(f"{backend}: " + "; ".join(outcomes))
