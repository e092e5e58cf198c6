"""Fixtures shared by every tier. Integration tests run once per database backend."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from argon2 import PasswordHasher, profiles

from patronlink.services import secrets
from patronlink.settings import Settings
from patronlink.storage.database import Database
from patronlink.storage.engine import make_engine
from patronlink.storage.migrate import upgrade
from tests.support.databases import (
    migrated_sqlite_template,
    postgres_database,
    sqlite_copy,
    truncate_all,
)

BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--slow", action="store_true", help="run the long tests (as `make long` does)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # The soak runs only when asked for by its marker (`make soak`, `pytest -m soak`).
    if "soak" not in (config.option.markexpr or ""):
        skip_soak = pytest.mark.skip(reason="the soak runs on its own: make soak")
        for item in items:
            if "soak" in item.keywords:
                item.add_marker(skip_soak)
    if config.getoption("--slow") or os.environ.get("CI", "").lower() == "true":
        return
    skip = pytest.mark.skip(reason="long test: make long (or pytest --slow) runs it; CI does")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def cheap_argon2(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Password hashes made in the test process cost microseconds, not 0.1-0.2 s and 64 MiB.

    About 1,400 hashes and checks run in the suite's own process (staff users, integration
    users, PINs); at the production cost they took a fifth of its CPU time. What is under test
    is which password is accepted, not argon2's cost; a hash made here verifies like any other
    (the parameters travel inside it). Servers started as subprocesses (tests/e2e) keep the real
    parameters, and so do tests marked ``real_argon2`` (those that measure the cost itself);
    tests/unit/test_password_hashing.py holds the production parameters to the library's own.
    """
    secrets._dummy_hash.cache_clear()
    if request.node.get_closest_marker("real_argon2") is None:
        monkeypatch.setattr(secrets, "_hasher", PasswordHasher.from_parameters(profiles.CHEAPEST))
    yield
    secrets._dummy_hash.cache_clear()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return migrated_sqlite_template(tmp_path_factory.mktemp("sqlite-template"))


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    with postgres_database(worker) as url:
        engine = make_engine(Settings(database_url=url))
        upgrade(engine)
        engine.dispose()
        yield url


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def db(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """A migrated, empty database of the test's backend."""
    if backend == "postgresql":
        url = request.getfixturevalue("postgres_url")
        database = Database(make_engine(Settings(database_url=url)))
        truncate_all(database.engine)
    else:
        database = sqlite_copy(request.getfixturevalue("sqlite_template"), tmp_path)
    try:
        yield database
    finally:
        database.dispose()


@pytest.fixture
def settings(db: Database) -> Settings:
    return Settings(database_url=db.engine.url.render_as_string(hide_password=False))


class FrozenClock:
    """A clock the test moves by hand."""

    def __init__(self, now: dt.datetime) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **kwargs: float) -> None:
        self.now += dt.timedelta(**kwargs)


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(dt.datetime(2026, 11, 23, 10, 0, tzinfo=dt.UTC))
