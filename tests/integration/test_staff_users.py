"""Staff users for administrators at /staff/users (issue 18, item 3), and their audit entries.

Over real HTTP on SQLite and PostgreSQL: an administrator lists users page by page, creates one,
disables and enables one, resets a password (typed, or chosen by the server and shown once);
disabling and a new password end the user's sessions at once; every action leaves its audit
entry in the same transaction (a refused one leaves none); the CLI's user commands are audited
with the operator's name; anyone but an administrator is told the page does not exist.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from patronlink.cli import main
from patronlink.domain.audit import ObjectKind
from patronlink.services import audit
from patronlink.settings import Settings
from patronlink.storage import tables
from patronlink.storage.audit import AuditEntry, AuditFilter
from patronlink.storage.database import Database
from patronlink.web.app import create_app
from tests.conftest import FrozenClock
from tests.support.live_server import live_server
from tests.support.staff_site import PASSWORD, A, add_users, configure, log_in, post_form

COOKIE = "patronlink_staff"
_SHOWN = re.compile(r'<code id="new-password">([^<]+)</code>')


@pytest.fixture
def base_url(db: Database, settings: Settings, clock: FrozenClock, tmp_path: Path) -> Iterator[str]:
    configure(db, clock, tmp_path)
    add_users(db, clock)
    with live_server(create_app(settings, db, clock)) as url:
        yield url


@pytest.fixture
def root(base_url: str) -> Iterator[httpx.Client]:
    """The administrator, signed in."""
    with httpx.Client(base_url=base_url) as c:
        assert log_in(c, "root").status_code == 303
        yield c


def user_entries(db: Database) -> list[AuditEntry]:
    """The staff-user entries of this test, oldest first (the site's own three users were
    created by the system actor, before the test)."""
    found = audit.search(db, AuditFilter(object_kind=ObjectKind.STAFF_USER), 1000, 0).items
    return [e for e in reversed(found) if e.actor_kind != "system"]


def audit_rows(db: Database) -> int:
    with db.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(tables.audit_log)).scalar_one())


def disabled_at(db: Database, username: str) -> object:
    with db.engine.connect() as conn:
        return conn.execute(
            select(tables.staff_users.c.disabled_at).where(
                tables.staff_users.c.username == username
            )
        ).scalar_one()


def test_a_disabled_users_old_cookie_reads_no_page(
    root: httpx.Client, base_url: str, db: Database
) -> None:
    with httpx.Client(base_url=base_url) as anna:
        log_in(anna, "anna")
        kept = anna.cookies[COOKIE]
        assert anna.get("/staff").status_code == 200
        done = post_form(root, "/staff/users/anna/disable")
        assert done.status_code == 303
        assert "User anna is disabled; 1 session(s) ended." in root.get("/staff/users").text
        with httpx.Client(base_url=base_url) as copy:
            copy.cookies.set(COOKIE, kept, path="/staff")
            for path in ("/staff", "/staff/errors", "/staff/messages", "/staff/patrons"):
                page = copy.get(path)
                assert page.status_code == 303, path
                assert page.headers["location"].startswith("/staff/login")
    with httpx.Client(base_url=base_url) as again:
        assert log_in(again, "anna").status_code == 401
    assert disabled_at(db, "anna") is not None
    (entry,) = user_entries(db)
    assert (entry.actor_kind, entry.actor, entry.source) == ("staff", "root", "127.0.0.1")
    assert (entry.action, entry.object_id, entry.agency_id) == ("user.disable", "anna", A)
    assert entry.details == {"sessions_ended": 1}

    # Enabled again: anna logs in with her old password.
    assert post_form(root, "/staff/users/anna/enable").status_code == 303
    assert disabled_at(db, "anna") is None
    with httpx.Client(base_url=base_url) as back:
        assert log_in(back, "anna").status_code == 303
    assert [e.action for e in user_entries(db)] == ["user.disable", "user.enable"]


def test_a_password_chosen_by_the_server_is_shown_once_and_ends_sessions(
    root: httpx.Client, base_url: str, db: Database
) -> None:
    with httpx.Client(base_url=base_url) as anna:
        log_in(anna, "anna")
        answer = post_form(root, "/staff/users/anna/password", password="")
        assert answer.status_code == 200
        shown = _SHOWN.search(answer.text)
        assert shown, answer.text
        password = shown.group(1)
        assert len(password) >= 10
        assert anna.get("/staff").status_code == 303  # her session ended
    assert password not in root.get("/staff/users").text  # shown once only
    with httpx.Client(base_url=base_url) as fresh:
        assert log_in(fresh, "anna").status_code == 401  # the old password is gone
        assert log_in(fresh, "anna", password).status_code == 303
    (entry,) = user_entries(db)
    assert (entry.action, entry.actor, entry.object_id) == ("user.reset_password", "root", "anna")
    assert entry.details == {"sessions_ended": 1}
    assert password not in str(entry.details)


def test_a_password_set_by_the_administrator(
    root: httpx.Client, base_url: str, db: Database
) -> None:
    typed = "a long new secret 42"
    done = post_form(root, "/staff/users/bo/password", password=typed)
    assert done.status_code == 303
    assert "User bo has a new password; 0 session(s) ended." in root.get("/staff/users").text
    with httpx.Client(base_url=base_url) as bo:
        assert log_in(bo, "bo", typed).status_code == 303
    # Too short: refused with a reason, nothing changed, nothing logged.
    before = audit_rows(db)
    short = post_form(root, "/staff/users/bo/password", password="short")
    assert short.status_code == 422
    assert "at least 10 characters" in short.text
    assert audit_rows(db) == before
    with httpx.Client(base_url=base_url) as bo:
        assert log_in(bo, "bo", typed).status_code == 303


def test_an_administrator_creates_users(root: httpx.Client, base_url: str, db: Database) -> None:
    typed = "carls own password"
    made = post_form(root, "/staff/users", username="carl", agency=A, language="da", password=typed)
    assert made.status_code == 303
    assert "User carl is created." in root.get("/staff/users").text
    chosen = post_form(root, "/staff/users", username="dora", agency="*", language="en")
    shown = _SHOWN.search(chosen.text)
    assert chosen.status_code == 200
    assert shown
    with httpx.Client(base_url=base_url) as c:
        assert log_in(c, "carl", typed).status_code == 303
        assert c.get("/staff/users").status_code == 404  # carl is not an administrator
    with httpx.Client(base_url=base_url) as d:
        assert log_in(d, "dora", shown.group(1)).status_code == 303
        assert d.get("/staff/users").status_code == 200  # dora is
    entries = user_entries(db)
    assert [(e.action, e.object_id, e.agency_id) for e in entries] == [
        ("user.create", "carl", A),
        ("user.create", "dora", None),
    ]
    assert entries[0].details == {"administrator": False, "language": "da"}
    assert entries[1].details == {"administrator": True, "language": "en"}

    # Refused: no scope chosen, a name taken, a bad name. No user and no entry is added.
    before = audit_rows(db)
    no_scope = post_form(root, "/staff/users", username="eve", agency="", password=typed)
    assert no_scope.status_code == 422
    assert "Choose the user&#39;s library, or administrator." in no_scope.text
    taken = post_form(root, "/staff/users", username="anna", agency=A, password=typed)
    assert taken.status_code == 409
    bad = post_form(root, "/staff/users", username="e v e", agency=A, password=typed)
    assert bad.status_code == 422
    assert audit_rows(db) == before
    with db.transaction() as repos:
        assert repos.staff_users.id_of("eve") is None


def test_an_administrator_cannot_disable_themself(root: httpx.Client, db: Database) -> None:
    refused = post_form(root, "/staff/users/root/disable")
    assert refused.status_code == 422
    assert "You cannot disable yourself." in refused.text
    assert disabled_at(db, "root") is None
    assert user_entries(db) == []


def test_unknown_user_and_missing_csrf_change_nothing(root: httpx.Client, db: Database) -> None:
    assert post_form(root, "/staff/users/nobody/disable").status_code == 404
    forged = root.post("/staff/users/anna/disable", data={"csrf_token": "forged"})
    assert forged.status_code == 403
    bare = root.post("/staff/users/anna/password", data={"password": "another long one"})
    assert bare.status_code == 403
    assert disabled_at(db, "anna") is None
    assert user_entries(db) == []


def test_the_page_is_for_administrators_only(base_url: str, db: Database) -> None:
    with httpx.Client(base_url=base_url) as anna:
        log_in(anna, "anna")
        assert "/staff/users" not in anna.get("/staff").text  # no menu link
        assert anna.get("/staff/users").status_code == 404
        for path in ("/staff/users/bo/disable", "/staff/users/bo/password", "/staff/users"):
            answer = post_form(anna, path, password="another long one", username="x", agency=A)
            assert answer.status_code == 404, path
    with httpx.Client(base_url=base_url) as nobody:
        away = nobody.get("/staff/users")
        assert away.status_code == 303
        assert away.headers["location"].startswith("/staff/login")
    assert disabled_at(db, "bo") is None
    assert user_entries(db) == []


def test_the_list_pages(root: httpx.Client, db: Database, clock: FrozenClock) -> None:
    assert 'href="/staff/users"' in root.get("/staff").text  # the admin menu links here
    with db.transaction() as repos:
        users = repos.staff_users
        for i in range(105):  # a stored hash is not needed to list them
            users.add(f"user{i:03}", "not-a-hash", A, "da", clock())
    first = root.get("/staff/users")
    assert "1-100 of 108" in first.text
    assert first.text.count('<tr id="user-') == 100
    nxt = re.search(r'<a rel="next" href="([^"]+)"', first.text)
    assert nxt
    second = root.get(nxt.group(1).replace("&amp;", "&"))
    assert "101-108 of 108" in second.text
    assert second.text.count('<tr id="user-') == 8
    assert "user104" in second.text


def test_the_cli_user_commands_are_audited(base_url: str, db: Database, settings: Settings) -> None:
    runner = CliRunner()
    for args, stdin in (
        (["user", "create", "--username", "fie", "--agency", A, "--password-stdin"], PASSWORD),
        (["user", "disable", "fie"], None),
        (["user", "enable", "fie"], None),
        (["user", "reset-password", "fie", "--password-stdin"], "yet another password"),
    ):
        result = runner.invoke(main, ["--database-url", settings.database_url, *args], input=stdin)
        assert result.exit_code == 0, result.output
    entries = user_entries(db)
    assert [e.action for e in entries] == [
        "user.create",
        "user.disable",
        "user.enable",
        "user.reset_password",
    ]
    assert all(e.actor_kind == "cli" and e.source and e.object_id == "fie" for e in entries)
    assert all(e.agency_id == A for e in entries)
    # A refused command leaves no entry.
    before = audit_rows(db)
    result = runner.invoke(main, ["--database-url", settings.database_url, "user", "enable", "x"])
    assert result.exit_code != 0
    assert audit_rows(db) == before
