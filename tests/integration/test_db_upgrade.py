"""`patronlink db upgrade` run several times at once, behind a long transaction, and a process
meeting a schema newer than it knows (issue 14, item 4)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import create_engine, text

from patronlink.cli import main
from patronlink.settings import Settings
from patronlink.storage.database import Database
from patronlink.storage.engine import make_engine
from patronlink.storage.migrate import current_revision, head_revision, upgrade
from tests.support.databases import postgres_database
from tests.support.processes import PATRONLINK, run_cli


def _env(url: str, **extra: str) -> dict[str, str]:
    return {**os.environ, "PATRONLINK_DATABASE_URL": url, "PATRONLINK_LOG_FORMAT": "json", **extra}


@pytest.fixture
def empty_postgres() -> Iterator[str]:
    with postgres_database("upgrade") as url:
        yield url


def _run_together(url: str, count: int) -> list[subprocess.CompletedProcess[str]]:
    """Start ``count`` `db upgrade` processes as close together as the OS allows."""
    processes = [
        subprocess.Popen(
            [*PATRONLINK, "db", "upgrade"],
            env=_env(url),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(count)
    ]
    results = []
    for p in processes:
        out, err = p.communicate(timeout=180)
        results.append(subprocess.CompletedProcess(p.args, p.returncode, out, err))
    return results


@pytest.mark.postgres
def test_three_concurrent_upgrades_on_postgresql_all_succeed(empty_postgres: str) -> None:
    results = _run_together(empty_postgres, 3)
    for done in results:
        assert done.returncode == 0, done.stderr
        assert "Traceback" not in done.stderr
    engine = make_engine(Settings(database_url=empty_postgres))
    try:
        head = head_revision(engine)
        assert current_revision(engine) == head
        outputs = sorted(r.stdout.strip() for r in results)
        # One process migrated; the others waited for it and found the schema current.
        assert outputs.count(f"database schema is up to date ({head})") == 2, outputs
        assert outputs[-1] == f"database schema upgraded from empty to {head}", outputs
        with engine.connect() as conn:
            versions = conn.execute(text("SELECT version_num FROM alembic_version")).all()
        assert [v[0] for v in versions] == [head]
    finally:
        engine.dispose()


def test_three_concurrent_upgrades_on_sqlite_all_succeed(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'var' / 'patronlink.db'}"
    results = _run_together(url, 3)
    for done in results:
        assert done.returncode == 0, done.stderr
        assert "Traceback" not in done.stderr
    upgraded = [r for r in results if "upgraded from empty" in r.stdout]
    assert len(upgraded) == 1, [r.stdout for r in results]


class _Holder:
    """A transaction on another connection that has written a row of ``agencies`` and keeps
    its lock until closed, as a long staff transaction would."""

    def __init__(self, url: str) -> None:
        self.engine = create_engine(Settings(database_url=url).database_url)
        self.conn = self.engine.connect()
        self.conn.execute(
            text(
                "INSERT INTO agencies (id, number, name, timezone, language, country_code, "
                "settings, created_at, updated_at) VALUES ('DK-700000', '700000', 'Lock', "
                "'Europe/Copenhagen', 'da', '45', '{}', now(), now())"
            )
        )

    def close(self) -> None:
        if self.conn.closed:
            return
        self.conn.rollback()
        self.conn.close()
        self.engine.dispose()


@pytest.fixture
def postgres_at_0007(empty_postgres: str) -> str:
    engine = make_engine(Settings(database_url=empty_postgres))
    upgrade(engine, "0007")
    engine.dispose()
    return empty_postgres


@pytest.mark.postgres
def test_a_migration_behind_a_long_transaction_gives_way_and_tries_again(
    postgres_at_0007: str,
) -> None:
    holder = _Holder(postgres_at_0007)
    process = subprocess.Popen(
        [*PATRONLINK, "db", "upgrade"],
        env=_env(
            postgres_at_0007,
            PATRONLINK_MIGRATION_LOCK_TIMEOUT_SECONDS="0.3",
            PATRONLINK_MIGRATION_ATTEMPTS="6",
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stderr is not None
        # The long transaction ends once the upgrade has given way to it (and not before).
        first = process.stderr.readline()
        holder.close()
        out, rest = process.communicate(timeout=120)
    finally:
        holder.close()
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, first + rest
    assert "waited 0.3 s for a table lock held by another transaction (attempt 1)" in first
    assert "trying again in 1 s" in first
    assert "upgraded from 0007 to" in out


@pytest.mark.postgres
def test_a_lock_held_past_every_attempt_fails_cleanly_and_changes_nothing(
    postgres_at_0007: str,
) -> None:
    holder = _Holder(postgres_at_0007)
    try:
        done = run_cli(
            ["db", "upgrade"],
            _env(
                postgres_at_0007,
                PATRONLINK_MIGRATION_LOCK_TIMEOUT_SECONDS="0.2",
                PATRONLINK_MIGRATION_ATTEMPTS="2",
            ),
        )
    finally:
        holder.close()
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert "could not take a table lock within 0.2 s in 2 attempts" in done.stderr
    engine = make_engine(Settings(database_url=postgres_at_0007))
    try:
        assert current_revision(engine) == "0007"
    finally:
        engine.dispose()


def _set_revision(db: Database, revision: str) -> None:
    with db.engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = :r"), {"r": revision})


@pytest.fixture
def newer_schema(db: Database) -> Iterator[Database]:
    """The test's database as a newer patronlink would have left it (revision 0099)."""
    head = head_revision(db.engine)
    assert head is not None
    _set_revision(db, "0099")
    try:
        yield db
    finally:
        _set_revision(db, head)  # the PostgreSQL database is shared by the session's tests


def test_a_process_meeting_a_newer_schema_says_so(newer_schema: Database) -> None:
    url = newer_schema.engine.url.render_as_string(hide_password=False)
    head = head_revision(newer_schema.engine)
    runner = CliRunner()
    done = runner.invoke(main, ["--database-url", url, "sms", "list"])
    assert done.exit_code == 1
    assert "the database schema of " in done.output  # named: a path or a URL
    assert f"is at revision 0099, newer than this patronlink (which expects {head})" in done.output
    assert "run `patronlink db upgrade` first" not in done.output
    upgraded = runner.invoke(main, ["--database-url", url, "db", "upgrade"])
    assert upgraded.exit_code == 1
    assert "newer than this patronlink knows (its newest is" in upgraded.output
    allowed = runner.invoke(
        main, ["--database-url", url, "sms", "list"], env={"PATRONLINK_ALLOW_NEWER_SCHEMA": "true"}
    )
    assert allowed.exit_code == 0, allowed.output
    assert "starting anyway" in allowed.output


def test_an_older_schema_still_asks_for_db_upgrade(db: Database) -> None:
    url = db.engine.url.render_as_string(hide_password=False)
    head = head_revision(db.engine)
    assert head is not None
    _set_revision(db, "0007")
    try:
        done = CliRunner().invoke(main, ["--database-url", url, "sms", "list"])
    finally:
        _set_revision(db, head)
    assert done.exit_code == 1
    assert "the database schema of " in done.output
    assert (
        f"is at revision 0007, older than this patronlink "
        f"(which expects {head}): run `patronlink db upgrade` first" in done.output
    )
