"""schemathesis against ``/openapi.json`` of a live app, on SQLite and PostgreSQL.

Every operation gets generated requests, valid ones (``positive``) and invalid ones
(``negative``), with a staff token of all agencies. Each response must not be a 5xx and must be
what the schema says: a documented status, content type and body. The examples per operation are
bounded so one backend takes about a minute; the seed is fixed so a failure reproduces.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from patronlink.services.access import create_token
from patronlink.services.demo import load_demo
from patronlink.settings import Settings
from patronlink.storage.database import Database
from patronlink.storage.engine import make_engine
from patronlink.web.app import create_app
from tests.conftest import FrozenClock
from tests.support.databases import sqlite_copy, truncate_all
from tests.support.live_server import live_server

pytestmark = pytest.mark.slow

EXAMPLES = 20  # per operation and mode: every operation is covered, in about a minute
SEED = 8
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture
def live_app(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path, clock: FrozenClock
) -> Iterator[tuple[str, str]]:
    """The base URL of a served app with the demo library, and a token for all agencies."""
    if backend == "postgresql":
        url = request.getfixturevalue("postgres_url")
        db = Database(make_engine(Settings(database_url=url)))
        truncate_all(db.engine)
    else:
        db = sqlite_copy(request.getfixturevalue("sqlite_template"), tmp_path)
    try:
        load_demo(db, clock)
        token = create_token(db, "fuzz", None, clock)
        settings_ = Settings(database_url=db.engine.url.render_as_string(hide_password=False))
        with live_server(create_app(settings_, db, clock)) as base:
            yield base, token
    finally:
        db.dispose()


def test_every_operation_answers_as_documented(live_app: tuple[str, str]) -> None:
    base, token = live_app
    schema = schemathesis.openapi.from_url(f"{base}/openapi.json")
    headers = {"Authorization": f"Bearer {token}"}
    failures: list[str] = []
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @seed(SEED)
            @settings(
                max_examples=EXAMPLES,
                deadline=None,
                database=None,
                phases=[Phase.explicit, Phase.generate, Phase.shrink],
                suppress_health_check=list(HealthCheck),
            )
            @given(case=operation.as_strategy(generation_mode=mode))
            def call(case: schemathesis.Case) -> None:
                case.call_and_validate(base_url=base, headers=headers, checks=CHECKS)

            try:
                call()
            except Unsatisfiable:
                pass  # nothing to make invalid (no parameters): the positive run covered it
            except (AssertionError, BaseExceptionGroup) as exc:
                failures.append(f"{operation.label} [{mode.value}]\n{exc}")
    assert operations >= 20  # the staff API, the SMS callback, rest-dlf and operations
    assert not failures, "\n\n".join(failures)
