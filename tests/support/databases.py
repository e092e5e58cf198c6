"""Real databases for tests: a migrated SQLite file per test, and a PostgreSQL database per run.

PostgreSQL comes from ``PATRONLINK_TEST_POSTGRES_URL`` (any database the user may connect to; a
fresh database is created beside it for the run and dropped at the end). With ``CI=true`` a
missing or unreachable PostgreSQL fails the tests instead of skipping them.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import create_engine, make_url, text
from sqlalchemy.engine import Engine

from patronlink.settings import Settings
from patronlink.storage import tables
from patronlink.storage.database import Database
from patronlink.storage.engine import make_engine
from patronlink.storage.migrate import upgrade

POSTGRES_ENV = "PATRONLINK_TEST_POSTGRES_URL"


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def postgres_base_url() -> str:
    url = os.environ.get(POSTGRES_ENV)
    if not url:
        message = f"{POSTGRES_ENV} is not set"
        if in_ci():
            pytest.fail(f"{message}: PostgreSQL tests must run in CI")
        pytest.skip(message)
    return Settings(database_url=url).database_url


@contextmanager
def postgres_database(label: str) -> Iterator[str]:
    """Create a database for this run; yields its URL; drops it afterwards."""
    base = make_url(postgres_base_url())
    name = f"patronlink_test_{label}_{uuid.uuid4().hex[:10]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        admin.dispose()
        if in_ci():
            raise
        pytest.skip(f"PostgreSQL is not reachable: {exc}")
    try:
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def truncate_all(engine: Engine) -> None:
    names = [t.name for t in reversed(tables.metadata.sorted_tables)]
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            rows = conn.execute(
                text(
                    "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
                    "AND tablename <> 'alembic_version'"
                )
            ).scalars()
            quoted = ", ".join(f'"{n}"' for n in rows)
            if quoted:
                conn.execute(text(f"TRUNCATE {quoted} RESTART IDENTITY CASCADE"))
        else:
            for name in names:
                conn.execute(text(f'DELETE FROM "{name}"'))


def migrated_sqlite_template(directory: Path) -> Path:
    path = directory / "template.db"
    engine = make_engine(Settings(database_url=f"sqlite:///{path}"))
    upgrade(engine)
    engine.dispose()
    return path


def sqlite_copy(template: Path, directory: Path) -> Database:
    path = directory / "patronlink.db"
    shutil.copyfile(template, path)
    return Database(make_engine(Settings(database_url=f"sqlite:///{path}")))
