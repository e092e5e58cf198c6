"""What docs/deployment.md promises: the least-privilege roles work, connections are named and
pooled as set, the units' commands exist, every setting is documented, and the image builds and
turns healthy where a container runtime is available (issue 14, item 6)."""

from __future__ import annotations

import configparser
import os
import shlex
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner
from sqlalchemy import make_url, text

from patronlink.cli import main
from patronlink.settings import Settings
from patronlink.storage.engine import make_engine
from tests.support.databases import postgres_base_url, postgres_database
from tests.support.processes import check_cli, run_cli

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"


# --- least privileges ------------------------------------------------------------------------


@pytest.fixture
def roles() -> Iterator[tuple[str, str, str]]:
    """A fresh database set up by deploy/postgres-roles.sql, under role names of this test's
    own (roles belong to the whole server); yields (database URL, owner, app)."""
    suffix = uuid.uuid4().hex[:8]
    owner, app = f"plo_{suffix}", f"pla_{suffix}"
    script = (
        (DEPLOY / "postgres-roles.sql")
        .read_text()
        .replace("patronlink_owner", owner)
        .replace("patronlink_app", app)
    )
    admin_url = make_url(postgres_base_url())
    try:
        with postgres_database("roles") as url:
            libpq = make_url(url).set(drivername="postgresql").render_as_string(False)
            with psycopg.connect(libpq, autocommit=True) as conn:
                conn.execute(script.encode())
            yield url, owner, app
    finally:
        libpq = admin_url.set(drivername="postgresql").render_as_string(False)
        with psycopg.connect(libpq, autocommit=True) as conn:
            for role in (app, owner):
                conn.execute(f'DROP ROLE IF EXISTS "{role}"'.encode())


def _as(url: str, role: str) -> dict[str, str]:
    return {
        **os.environ,
        "PATRONLINK_DATABASE_URL": make_url(url).set(username=role).render_as_string(False),
        "PATRONLINK_LOG_FORMAT": "json",
    }


@pytest.mark.postgres
def test_the_app_role_runs_everything_and_changes_no_table(
    roles: tuple[str, str, str],
) -> None:
    url, owner, app = roles
    assert "upgraded from empty" in check_cli(["db", "upgrade"], _as(url, owner))
    env = _as(url, app)
    check_cli(["demo"], env)
    check_cli(["sms", "send", "--agency", "DK-761500", "--to", "52903991", "--text", "Hej"], env)
    check_cli(["sms", "pause"], env)
    assert "claimed 0" in check_cli(["worker", "--once"], env)
    check_cli(["sms", "resume"], env)
    assert "sent 1" in check_cli(["worker", "--once"], env)
    check_cli(["token", "create", "--name", "ops"], env)
    # The app role may not migrate, nor create, truncate or drop anything.
    refused = run_cli(["db", "upgrade"], _as(url, app))
    assert refused.returncode == 0  # nothing to do: the schema is current
    engine = make_engine(Settings(database_url=env["PATRONLINK_DATABASE_URL"]))
    try:
        for statement in (
            "CREATE TABLE patronlink.extra (id int)",
            "TRUNCATE messages",
            "DROP TABLE message_attempts",
            "ALTER TABLE messages ADD COLUMN extra int",
        ):
            with (
                engine.connect() as conn,
                pytest.raises(Exception, match=r"permission denied|owner"),
            ):
                conn.execute(text(statement))
    finally:
        engine.dispose()


# --- connections -----------------------------------------------------------------------------


@pytest.mark.postgres
def test_connections_carry_the_application_name_and_the_pool_sizes(postgres_url: str) -> None:
    engine = make_engine(
        Settings(database_url=postgres_url, database_pool_size=3, database_max_overflow=2),
        "patronlink worker",
    )
    try:
        with engine.connect() as conn:
            name = conn.execute(text("SELECT current_setting('application_name')")).scalar()
        assert name == "patronlink worker"
        assert (engine.pool.size(), engine.pool._max_overflow) == (3, 2)  # type: ignore[attr-defined]
    finally:
        engine.dispose()
    named = make_engine(
        Settings(database_url=postgres_url, database_application_name="patronlink web-3")
    )
    try:
        with named.connect() as conn:
            name = conn.execute(text("SELECT current_setting('application_name')")).scalar()
        assert name == "patronlink web-3"
    finally:
        named.dispose()


# --- systemd units ---------------------------------------------------------------------------


def _unit(name: str) -> configparser.ConfigParser:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read(DEPLOY / "systemd" / name)
    return unit


@pytest.mark.parametrize("name", ["patronlink-serve.service", "patronlink-worker.service"])
def test_the_units_run_real_commands(name: str) -> None:
    service = _unit(name)["Service"]
    for key in ("ExecStart", "ExecStartPre"):
        if key not in service:
            continue
        argv = shlex.split(service[key])
        assert argv[0] == "/opt/patronlink/bin/patronlink"
        done = CliRunner().invoke(main, [*argv[1:], "--help"])
        assert done.exit_code == 0, f"{key}: {done.output}"
    assert service["User"] == "patronlink"


def test_the_worker_has_time_to_drain_a_working_gateway() -> None:
    """TimeoutStopSec covers the worker's held texts at the defaults against a gateway that
    answers in 0.2 s (docs/deployment.md, Stopping)."""
    defaults = Settings()
    held = defaults.dispatch_batch_size + defaults.dispatch_max_in_flight
    drain = held / 4 * 0.2  # one agency, concurrency 4
    worker = _unit("patronlink-worker.service")["Service"]
    assert int(worker["TimeoutStopSec"]) >= 2 * drain
    assert int(_unit("patronlink-serve.service")["Service"]["TimeoutStopSec"]) >= 10


# --- documentation of the settings -----------------------------------------------------------


@pytest.mark.parametrize("document", ["README.md", "docs/operations.md"])
def test_every_setting_is_in_the_tables(document: str) -> None:
    content = (ROOT / document).read_text()
    table_rows = [line for line in content.splitlines() if line.startswith("| `PATRONLINK_")]
    documented = " ".join(table_rows)
    missing = [
        f"PATRONLINK_{name.upper()}"
        for name in Settings.model_fields
        if f"`PATRONLINK_{name.upper()}`" not in documented
    ]
    assert missing == [], f"{document} lacks a table row for {missing}"


# --- the container image ---------------------------------------------------------------------


def _docker_works() -> bool:
    try:
        done = subprocess.run(["docker", "info"], capture_output=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


@pytest.mark.skipif(not _docker_works(), reason="no container runtime (docker info fails)")
def test_the_image_builds_runs_as_non_root_and_turns_healthy() -> None:
    tag = f"patronlink-test:{uuid.uuid4().hex[:8]}"
    subprocess.run(["docker", "build", "-t", tag, str(ROOT)], check=True, timeout=900)
    name = f"patronlink-test-{uuid.uuid4().hex[:8]}"
    try:
        user = subprocess.run(
            ["docker", "run", "--rm", tag, "id", "-u"], capture_output=True, text=True, check=True
        )
        assert user.stdout.strip() == "10001"
        subprocess.run(
            ["docker", "run", "-d", "--name", name, tag, "sh", "-c",
             "patronlink db upgrade && exec patronlink serve"],
            check=True,
        )  # fmt: skip
        status = ""
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            status = subprocess.run(
                ["docker", "inspect", "--format", "{{.State.Health.Status}}", name],
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
            if status in ("healthy", "unhealthy"):
                break
            time.sleep(2)
        assert status == "healthy"
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True, check=False)
        subprocess.run(["docker", "rmi", "-f", tag], capture_output=True, check=False)
