"""Issue 13, item 2: staff sessions live on the server and end when they should.

Over real HTTP on both backends: the cookie holds an opaque id only; logging out, disabling the
user and resetting the password end the session at once (a copy of the old cookie reads no
page and cancels nothing); an idle session ends after 30 minutes and any session after 12 hours.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from patronlink.cli import main
from patronlink.services.outbox import queue_sms
from patronlink.settings import Settings
from patronlink.storage.database import Database
from patronlink.storage.tables import messages, staff_sessions
from patronlink.web.app import create_app
from tests.conftest import FrozenClock
from tests.support.live_server import live_server
from tests.support.staff_site import PASSWORD, A, add_users, configure, csrf_of, log_in, post_form

COOKIE = "patronlink_staff"


@pytest.fixture
def base_url(db: Database, settings: Settings, clock: FrozenClock, tmp_path: Path) -> Iterator[str]:
    configure(db, clock, tmp_path)
    add_users(db, clock)
    with live_server(create_app(settings, db, clock)) as url:
        yield url


@pytest.fixture
def client(base_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=base_url) as c:
        yield c


def stolen(base_url: str, cookie: str) -> httpx.Client:
    """A second client holding a copy of the cookie (what an attacker would have kept)."""
    c = httpx.Client(base_url=base_url)
    c.cookies.set(COOKIE, cookie, path="/staff")
    return c


def session_rows(db: Database) -> int:
    with db.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(staff_sessions)).scalar_one())


def cli(settings: Settings, *args: str, stdin: str | None = None) -> str:
    result = CliRunner().invoke(main, ["--database-url", settings.database_url, *args], input=stdin)
    assert result.exit_code == 0, result.output
    return result.output


def test_the_cookie_is_an_opaque_id(client: httpx.Client, db: Database) -> None:
    log_in(client, "anna")
    value = client.cookies[COOKIE]
    assert value.startswith("s.")
    assert len(value) == 2 + 43  # 32 random bytes, base64url
    assert "anna" not in value
    assert session_rows(db) == 1


def test_a_cookie_kept_from_before_logout_reads_and_cancels_nothing(
    client: httpx.Client, base_url: str, db: Database, clock: FrozenClock
) -> None:
    message_id = queue_sms(db, A, "52903991", "Din bog er klar", clock)
    log_in(client, "anna")
    kept = client.cookies[COOKIE]
    with stolen(base_url, kept) as attacker:
        assert attacker.get("/staff").status_code == 200
        csrf = csrf_of(attacker.get("/staff"))
        assert post_form(client, "/staff/logout").status_code == 303
        assert session_rows(db) == 0
        page = attacker.get("/staff")
        assert page.status_code == 303
        assert page.headers["location"].startswith("/staff/login")
        cancel = attacker.post(f"/staff/messages/{message_id}/cancel", data={"csrf_token": csrf})
        assert cancel.status_code in (303, 403)
        assert cancel.headers.get("location", "").startswith("/staff/login") or (
            cancel.status_code == 403
        )
    with db.engine.connect() as conn:
        status = conn.execute(
            select(messages.c.status).where(messages.c.id == message_id)
        ).scalar_one()
    assert status == "queued"


def test_an_idle_session_ends_after_30_minutes(client: httpx.Client, clock: FrozenClock) -> None:
    log_in(client, "anna")
    clock.advance(minutes=29)
    assert client.get("/staff").status_code == 200  # used: the idle time starts again
    clock.advance(minutes=29)
    assert client.get("/staff").status_code == 200
    clock.advance(minutes=30, seconds=1)
    assert client.get("/staff").status_code == 303


def test_any_session_ends_after_12_hours(client: httpx.Client, clock: FrozenClock) -> None:
    log_in(client, "anna")
    for _ in range(24):
        clock.advance(minutes=29)
        assert client.get("/staff").status_code == 200
    clock.advance(minutes=29)  # 12 h 5 min after login, never idle for long
    assert client.get("/staff").status_code == 303


def test_limits_come_from_the_settings(
    db: Database, settings: Settings, clock: FrozenClock, tmp_path: Path
) -> None:
    configure(db, clock, tmp_path)
    add_users(db, clock)
    short = settings.model_copy(update={"staff_session_idle_minutes": 5.0})
    with live_server(create_app(short, db, clock)) as url, httpx.Client(base_url=url) as c:
        log_in(c, "anna")
        clock.advance(minutes=6)
        assert c.get("/staff").status_code == 303


def test_disabling_a_user_ends_their_sessions_and_logins(
    client: httpx.Client, base_url: str, db: Database, settings: Settings
) -> None:
    log_in(client, "anna")
    with httpx.Client(base_url=base_url) as second:
        log_in(second, "anna")
        assert session_rows(db) == 2
        out = cli(settings, "user", "disable", "anna")
        assert "ended 2 session(s)" in out
        assert client.get("/staff").status_code == 303
        assert second.get("/staff").status_code == 303
    assert log_in(client, "anna").status_code == 401  # same answer as a wrong password
    listed = [json.loads(line) for line in cli(settings, "user", "list", "--json").splitlines()]
    anna = next(u for u in listed if u["username"] == "anna")
    assert anna["disabled_at"] is not None
    assert anna["agency"] == A
    cli(settings, "user", "enable", "anna")
    assert log_in(client, "anna").status_code == 303


def test_a_password_reset_ends_the_sessions(
    client: httpx.Client, db: Database, settings: Settings
) -> None:
    log_in(client, "anna")
    out = cli(
        settings, "user", "reset-password", "anna", "--password-stdin", stdin="a new long secret\n"
    )
    assert "ended 1 session(s)" in out
    assert "a new long secret" not in out
    assert client.get("/staff").status_code == 303
    assert log_in(client, "anna", PASSWORD).status_code == 401
    assert log_in(client, "anna", "a new long secret").status_code == 303


def test_user_list_pages_and_refuses_unknown_users(settings: Settings, base_url: str) -> None:
    names = [line.split()[0] for line in cli(settings, "user", "list").splitlines()]
    assert names == ["anna", "bo", "root"]
    first = CliRunner().invoke(
        main, ["--database-url", settings.database_url, "user", "list", "--limit", "2"]
    )
    assert first.stdout.count("\n") == 2
    assert "showing 1-2 of 3; use --all" in first.stderr
    rest = cli(settings, "user", "list", "--limit", "2", "--offset", "2")
    assert rest.split()[0] == "root"
    unknown = CliRunner().invoke(
        main, ["--database-url", settings.database_url, "user", "disable", "nobody"]
    )
    assert unknown.exit_code != 0
    assert "does not exist" in str(unknown.exception or unknown.output)
    short = CliRunner().invoke(
        main,
        [
            "--database-url",
            settings.database_url,
            "user",
            "reset-password",
            "bo",
            "--password-stdin",
        ],
        input="short\n",
    )
    assert short.exit_code != 0
