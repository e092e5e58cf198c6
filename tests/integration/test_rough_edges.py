"""The rough edges of issue 18, item 7: each as a user met it."""

from __future__ import annotations

import datetime as dt
import os
import tomllib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from sqlalchemy import select

from patronlink.cli import main
from patronlink.config.schema import AgencySettings
from patronlink.services.demo import load_demo
from patronlink.settings import Settings
from patronlink.storage import tables
from patronlink.storage.database import Database
from patronlink.web.app import create_app
from tests.conftest import FrozenClock
from tests.support.live_server import live_server
from tests.support.staff_site import add_users, log_in

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "docs" / "libraries.example.toml"
EXAMPLE_ENV = {
    "HORSENS_SMS_PASSWORD": "a",
    "HORSENS_SMS_INBOUND_PASSWORD": "b",
    "AARHUS_LINK_PASSWORD": "c",
    "UCL_PASSWORD": "d",
}


def cli(db: Database, *args: str, env: dict[str, str] | None = None) -> object:
    url = db.engine.url.render_as_string(hide_password=False)
    return CliRunner().invoke(main, ["--database-url", url, *args], env=env)


def test_config_check_lists_every_error_at_once(tmp_path: Path) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text(
        '[[agencies]]\nid = "DK-761500"\nname = "Horsens"\ntimezone = "Europe/Copenhagen"\n'
        'language = "xx"\ncountry_code = "45"\ncolour = "blue"\n\n'
        '[agencies.sms]\ndriver = "xml"\npassword = "${NOT_SET_ANYWHERE}"\n'
    )
    result = CliRunner().invoke(main, ["config", "apply", "--check", str(broken)])
    assert result.exit_code == 2
    assert "4 problems" in result.stderr
    for found in ("line 5", "language", "unknown key 'colour'", "needs url", "NOT_SET_ANYWHERE"):
        assert found in result.stderr, result.stderr


def test_the_example_configuration_in_docs_is_valid() -> None:
    result = CliRunner().invoke(main, ["config", "apply", "--check", str(EXAMPLE)], env=EXAMPLE_ENV)
    assert result.exit_code == 0, result.output
    assert result.stdout.strip().endswith("valid")


def test_config_show_prints_the_demo_as_toml_without_secrets(
    db: Database, clock: FrozenClock, tmp_path: Path
) -> None:
    load_demo(db, clock)
    shown = cli(db, "config", "show")
    assert shown.exit_code == 0, shown.output  # type: ignore[attr-defined]
    document = tomllib.loads(shown.stdout)  # type: ignore[attr-defined]
    demo = document["agencies"][0]
    assert (demo["id"], demo["timezone"], demo["sms"]["driver"]) == (
        "DK-761500",
        "Europe/Copenhagen",
        "console",
    )
    assert demo["integration_users"] == [{"username": "sms", "password": "<hidden>"}]
    assert "demo-inbound-password" not in shown.stdout  # type: ignore[attr-defined]
    # What it prints is a configuration file again (once the hidden password is given).
    again = tmp_path / "again.toml"
    again.write_text(shown.stdout.replace('"<hidden>"', '"${DEMO_PW}"'))  # type: ignore[attr-defined]
    applied = cli(db, "config", "apply", str(again), env={"DEMO_PW": "demo-inbound-password"})
    assert applied.exit_code == 0, applied.output  # type: ignore[attr-defined]
    assert "nothing changed" in applied.stdout  # type: ignore[attr-defined]


def test_sms_send_at_is_the_agencys_local_time(db: Database, clock: FrozenClock) -> None:
    load_demo(db, clock)
    local = cli(db, "sms", "send", "--agency", "DK-761500", "--to", "52903991", "--text", "Hej",
                "--at", "2026-12-01T09:30")  # fmt: skip
    assert local.exit_code == 0, local.output  # type: ignore[attr-defined]
    offset = cli(db, "sms", "send", "--agency", "DK-761500", "--to", "52903991", "--text", "Hej",
                 "--at", "2026-12-01T09:30+00:00")  # fmt: skip
    with db.engine.connect() as conn:
        times = (
            conn.execute(select(tables.messages.c.send_at).order_by(tables.messages.c.id))
            .scalars()
            .all()
        )
    assert times == [
        dt.datetime(2026, 12, 1, 8, 30, tzinfo=dt.UTC),  # CET, +01:00
        dt.datetime(2026, 12, 1, 9, 30, tzinfo=dt.UTC),
    ]
    assert offset.exit_code == 0  # type: ignore[attr-defined]
    bad = cli(
        db, "sms", "send", "--agency", "DK-761500", "--to", "1", "--text", "x", "--at", "noon"
    )
    assert bad.exit_code == 2  # type: ignore[attr-defined]


def test_relative_sqlite_path_is_absolute_and_never_created_by_accident(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    settings = Settings(database_url="sqlite:///./var/patronlink.db")
    assert settings.database_url == f"sqlite:///{tmp_path.resolve()}/var/patronlink.db"
    monkeypatch.delenv("PATRONLINK_DATABASE_URL", raising=False)
    result = CliRunner().invoke(main, ["demo"])
    assert result.exit_code == 1
    assert f"there is no database at {tmp_path.resolve()}/var/patronlink.db" in result.stderr
    assert "patronlink db upgrade" in result.stderr
    assert not (tmp_path / "var").exists()
    assert os.getcwd() == str(tmp_path)


@pytest.fixture
def base_url(db: Database, settings: Settings, clock: FrozenClock) -> Iterator[str]:
    load_demo(db, clock)
    add_users_demo(db, clock)
    with live_server(create_app(settings, db, clock)) as url:
        yield url


def add_users_demo(db: Database, clock: FrozenClock) -> None:
    from patronlink.domain.agency import Agency

    with db.transaction() as repos:
        repos.agencies.upsert(Agency(id="DK-775100", name="Aarhus"), AgencySettings(), clock())
    add_users(db, clock)


def test_docs_are_served_from_the_package(base_url: str) -> None:
    page = httpx.get(f"{base_url}/docs")
    assert page.status_code == 200
    assert "cdn" not in page.text.lower()
    assert "/docs/assets/swagger-ui-bundle.js" in page.text
    script = httpx.get(f"{base_url}/docs/assets/swagger-ui-bundle.js")
    assert script.status_code == 200
    assert len(script.content) > 100_000  # the real bundle, not a stub
    assert httpx.get(f"{base_url}/docs/assets/swagger-ui.css").status_code == 200


def test_a_missing_staff_page_is_told_in_danish(base_url: str) -> None:
    with httpx.Client(base_url=base_url) as client:
        log_in(client, "bo")  # reads Danish
        missing = client.get("/staff/no-such-page")
    assert missing.status_code == 404
    assert "Not Found" not in missing.text
    assert "Siden findes ikke." in missing.text
