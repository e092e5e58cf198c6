"""The staff web UI over real HTTP (no browser): sessions, CSRF, tenancy, language, masking."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from fastapi import FastAPI

from patronlink.cli import main
from patronlink.domain.import_runs import Trigger
from patronlink.services.import_patrons import run_import
from patronlink.services.outbox import queue_sms
from patronlink.settings import Settings
from patronlink.storage.database import Database
from patronlink.web.app import create_app
from tests.conftest import FrozenClock
from tests.support.live_server import live_server
from tests.support.snapshots import row_counts
from tests.support.staff_site import (
    ENV_SECRET,
    PASSWORD,
    PLAIN_SECRET,
    A,
    B,
    add_users,
    configure,
    csrf_of,
    log_in,
    post_form,
)


@pytest.fixture
def app(db: Database, settings: Settings, clock: FrozenClock, tmp_path: Path) -> FastAPI:
    configure(db, clock, tmp_path)
    add_users(db, clock)
    return create_app(settings, db, clock)


@pytest.fixture
def base_url(app: FastAPI) -> Iterator[str]:
    with live_server(app) as url:
        yield url


@pytest.fixture
def client(base_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=base_url) as c:
        yield c


def heading(page: httpx.Response) -> str:
    found = re.search(r"<h1>(.*?)</h1>", page.text)
    assert found, page.text[:500]
    return found.group(1)


def test_pages_need_a_login_and_come_back_after_it(client: httpx.Client) -> None:
    first = client.get("/staff/errors?code=1002")
    assert first.status_code == 303
    assert first.headers["location"] == "/staff/login?next=%2Fstaff%2Ferrors%3Fcode%3D1002"
    login_page = client.get(first.headers["location"])
    assert 'value="/staff/errors?code=1002"' in login_page.text
    answer = client.post(
        "/staff/login",
        data={
            "username": "anna",
            "password": PASSWORD,
            "next": "/staff/errors?code=1002",
            "csrf_token": csrf_of(login_page),
        },
    )
    assert answer.status_code == 303
    assert answer.headers["location"] == "/staff/errors?code=1002"
    assert heading(client.get("/staff/errors")) == "Error queue"


def test_session_cookie_flags_and_logout(client: httpx.Client) -> None:
    before = client.get("/staff/login")
    answer = log_in(client, "anna")
    cookie = answer.headers["set-cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=lax" in cookie
    assert "Path=/staff" in cookie
    assert "Secure" not in cookie  # PATRONLINK_COOKIE_SECURE defaults to false for 127.0.0.1
    # The CSRF token changes at login: a token from before is worth nothing after.
    dashboard = client.get("/staff")
    assert csrf_of(dashboard) != csrf_of(before)
    assert "Signed in as anna" in dashboard.text
    assert dashboard.headers["x-frame-options"] == "DENY"
    out = post_form(client, "/staff/logout")
    assert out.status_code == 303
    assert "You have logged out." in client.get("/staff/login").text
    assert client.get("/staff").status_code == 303


def test_secure_cookie_when_configured(db: Database, clock: FrozenClock, tmp_path: Path) -> None:
    configure(db, clock, tmp_path)
    add_users(db, clock)
    settings = Settings(
        database_url=db.engine.url.render_as_string(hide_password=False),
        cookie_secure=True,
        secret_key="k" * 40,
    )
    with live_server(create_app(settings, db, clock)) as url, httpx.Client(base_url=url) as c:
        assert "Secure" in c.get("/staff/login").headers["set-cookie"]


def test_wrong_password_and_throttling(client: httpx.Client) -> None:
    wrong = log_in(client, "anna", "not the password")
    assert wrong.status_code == 401
    assert "Wrong user name or password." in wrong.text or "Forkert brugernavn" in wrong.text
    assert log_in(client, "nobody", "whatever").status_code == 401
    for _ in range(4):
        log_in(client, "anna", "still wrong")
    throttled = log_in(client, "anna")  # the right password, but too soon
    assert throttled.status_code == 429


def test_a_tampered_cookie_is_an_empty_session(client: httpx.Client) -> None:
    log_in(client, "root")
    value = client.cookies["patronlink_staff"]
    client.cookies.set("patronlink_staff", value[:-2] + "xx", path="/staff")
    assert client.get("/staff").status_code == 303


def test_forms_without_the_csrf_token_are_refused(
    client: httpx.Client, db: Database, clock: FrozenClock
) -> None:
    message_id = queue_sms(db, A, "52903991", "Din bog er klar", clock)
    log_in(client, "anna")
    for path, data in [
        (f"/staff/messages/{message_id}/cancel", {}),
        ("/staff/errors/retry", {"ids": str(message_id)}),
        ("/staff/imports/ucl-students/run", {}),
        ("/staff/language", {"language": "da"}),
        ("/staff/logout", {}),
    ]:
        for token in (None, "forged-token"):
            body = {**data, **({"csrf_token": token} if token else {})}
            refused = client.post(path, data=body)
            assert refused.status_code == 403, path
            assert "The form could not be accepted" in refused.text
            assert refused.headers["content-type"].startswith("text/html")
    # Nothing happened: the text is still queued and the user still signed in.
    assert "queued" in client.get(f"/staff/messages/{message_id}").text
    # A login form without its token is refused too (login CSRF).
    with httpx.Client(base_url=str(client.base_url)) as fresh:
        refused = fresh.post("/staff/login", data={"username": "anna", "password": PASSWORD})
    assert refused.status_code == 403


def test_language_switch_is_kept_in_the_session_and_as_preference(
    client: httpx.Client, base_url: str
) -> None:
    log_in(client, "anna")  # prefers English
    assert heading(client.get("/staff")) == "Dashboard"
    switched = post_form(client, "/staff/language", language="da", next="/staff/errors")
    assert switched.headers["location"] == "/staff/errors"
    page = client.get("/staff/errors")
    assert heading(page) == "Fejlkø"
    assert '<html lang="da">' in page.text
    # A new session starts in the user's remembered language.
    with httpx.Client(base_url=base_url) as other:
        log_in(other, "anna")
        assert heading(other.get("/staff")) == "Overblik"
    # Before login, the browser's Accept-Language decides.
    with httpx.Client(base_url=base_url, headers={"Accept-Language": "en-GB,en;q=0.8"}) as anon:
        assert heading(anon.get("/staff/login")) == "Log in"


def test_configuration_page_masks_secrets(client: httpx.Client) -> None:
    log_in(client, "root")
    a = client.get(f"/staff/agencies/{A}")
    assert a.status_code == 200
    assert ENV_SECRET not in a.text
    assert "STAFF_UI_SMS_PASSWORD" in a.text  # where the secret comes from, not what it is
    assert "horsens" in a.text  # the user name is not a secret
    b = client.get(f"/staff/agencies/{B}")
    assert PLAIN_SECRET not in b.text
    assert "••••••••" in b.text


def _other_agency_routes(message_id: int, run_id: int) -> list[tuple[str, str]]:
    return [
        ("GET", f"/staff?agency={A}"),
        ("GET", f"/staff/errors?agency={A}"),
        ("GET", f"/staff/messages?agency={A}"),
        ("GET", f"/staff/messages/{message_id}"),
        ("POST", f"/staff/messages/{message_id}/retry"),
        ("POST", f"/staff/messages/{message_id}/cancel"),
        ("GET", f"/staff/imports?agency={A}"),
        ("GET", "/staff/imports?source=ucl-students"),
        ("GET", f"/staff/imports/runs/{run_id}"),
        ("POST", "/staff/imports/ucl-students/run"),
        ("POST", "/staff/imports/ucl-students/preview"),
        ("GET", f"/staff/inbound?agency={A}"),
        ("GET", f"/staff/patrons?agency={A}&q=Jensen"),
        ("GET", f"/staff/patrons/{A}/1001"),
        ("GET", f"/staff/agencies/{A}"),
    ]


def test_an_agency_user_cannot_reach_another_agencys_data(
    client: httpx.Client, app: FastAPI, db: Database, clock: FrozenClock
) -> None:
    message_id = queue_sms(db, A, "52903991", "Din bog er klar", clock)
    run_id = run_import(db, "ucl-students", trigger=Trigger.CLI, clock=clock, environ={}).run_id
    assert run_id is not None
    routes = _other_agency_routes(message_id, run_id)
    # Every staff page route with a parameter or a scope is in the list above.
    covered = {re.sub(r"\d+", "{n}", path.split("?")[0]) for _, path in routes}
    staff_routes = {
        re.sub(r"\{[a-z_]+\}", "{n}", r.path.replace("ucl-students", "{n}"))
        for r in app.routes
        if getattr(r, "path", "").startswith("/staff")
    }
    own = {"/staff/login", "/staff/logout", "/staff/language", "/staff/static/staff.css"}
    expected = staff_routes - own - {"/staff/agencies", "/staff/errors/retry"}
    assert expected <= {p.replace("ucl-students", "{n}").replace(A, "{n}") for p in covered}

    log_in(client, "bo")
    token = csrf_of(client.get("/staff"))
    for method, path in routes:
        answer = client.request(
            method, path, data={"csrf_token": token} if method == "POST" else None
        )
        assert answer.status_code == 404, (method, path, answer.status_code)
        assert "Ikke fundet" in answer.text
    # Lists show only B's own things; a bulk retry cannot reach A's texts.
    assert f'href="/staff/messages/{message_id}"' not in client.get("/staff/messages").text
    assert "ucl-students" not in client.get("/staff/imports").text
    assert "Karen Jensen" not in client.get("/staff/patrons?q=Jensen").text
    agencies = client.get("/staff/agencies").text
    assert A not in agencies
    assert B in agencies
    post_form(client, "/staff/errors/retry", ids=str(message_id))
    post_form(client, "/staff/logout")
    log_in(client, "root")
    assert "status-queued" in client.get(f"/staff/messages/{message_id}").text
    # The administrator reaches everything.
    for method, path in routes:
        if method == "GET":
            assert client.get(path).status_code == 200, path


def test_api_errors_stay_json_while_staff_errors_are_pages(client: httpx.Client) -> None:
    api = client.get(f"/api/v1/agencies/{A}/messages/1")
    assert api.headers["content-type"] == "application/json"
    log_in(client, "anna")
    page = client.get("/staff/messages/999999")
    assert page.status_code == 404
    assert page.headers["content-type"].startswith("text/html")
    assert "message 999999 does not exist" in page.text
    bad = client.get("/staff/errors?since=yesterday")
    assert bad.status_code == 422
    assert "is not a date" in bad.text


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", f"/staff/messages/{2**63}"),
        ("POST", f"/staff/messages/{2**63}/retry"),
        ("POST", f"/staff/messages/{2**63}/cancel"),
        ("GET", f"/staff/imports/runs/{2**31}"),  # a 32-bit id on PostgreSQL
        ("GET", f"/staff/imports/runs/{2**63}"),
        ("POST", f"/staff/tokens/{2**31}/revoke"),
    ],
)
def test_ids_no_row_can_have_are_refused_as_pages(
    client: httpx.Client, db: Database, method: str, path: str
) -> None:
    """They were 500s (the driver's overflow), and the server reset the connection."""
    log_in(client, "root")
    before = row_counts(db)
    page = client.get(path) if method == "GET" else post_form(client, path)
    assert page.status_code == 422, page.text[:300]
    assert page.headers["content-type"].startswith("text/html")
    assert row_counts(db) == before


HOSTILE_PAGES = [  # (who, what they ask for)
    ("anna", f"/staff/patrons/{A}/a%00b"),
    ("anna", "/staff/patrons?q=a%00b"),
    ("root", "/staff/patrons?agency=a%00b&q=x"),
    ("anna", "/staff/messages?q=%00"),
    ("anna", "/staff/errors?code=%00"),
    ("root", "/staff/errors?agency=%00"),
    ("anna", "/staff/errors/retry-all?code=%00"),
    ("root", "/staff/audit?who=%00"),
    ("anna", "/staff/imports?source=%00"),
    ("anna", "/staff/agencies/%00"),
    ("root", "/staff?agency=%00"),
    ("root", "/staff/audit?until=9999-12-31"),  # the search runs to the day after
    ("anna", "/staff/errors?since=0001-01-01"),  # midnight in Copenhagen: before year 1 in UTC
]
HOSTILE_FORMS: list[tuple[str, dict[str, str]]] = [
    ("/staff/errors/retry-all", {"code": "\x00", "agency": "", "since": "", "until": ""}),
    ("/staff/errors/retry-all", {"code": "", "agency": "", "since": "", "until": "9999-12-31"}),
    ("/staff/tokens", {"name": "a\x00b", "agency": ""}),
    ("/staff/users", {"username": "a\x00", "password": "", "agency": "*", "language": "en"}),
    (f"/staff/patrons/{A}/1001/block", {"reason": "a\x00b"}),
    ("/staff/language", {"language": "\x00"}),
]


@pytest.mark.parametrize(("user", "path"), HOSTILE_PAGES)
def test_values_postgresql_cannot_compare_are_422_pages(
    client: httpx.Client, user: str, path: str
) -> None:
    """NUL characters and days past the calendar's ends were 500s on PostgreSQL."""
    log_in(client, user)
    page = client.get(path)
    assert page.status_code == 422, page.text[:300]
    assert page.headers["content-type"].startswith("text/html")


@pytest.mark.parametrize(("path", "fields"), HOSTILE_FORMS)
def test_forms_with_values_postgresql_cannot_hold_are_422_and_write_nothing(
    client: httpx.Client, db: Database, path: str, fields: dict[str, str]
) -> None:
    log_in(client, "root")
    before = row_counts(db)
    page = post_form(client, path, **fields)
    assert page.status_code == 422, page.text[:300]
    assert page.headers["content-type"].startswith("text/html")
    assert row_counts(db) == before


def test_retrying_ids_no_text_can_have_selects_none(client: httpx.Client, db: Database) -> None:
    log_in(client, "anna")
    before = row_counts(db)
    for impossible in ("9223372036854775808", "\u00b2", "-1"):
        done = post_form(client, "/staff/errors/retry", ids=[impossible])
        assert done.status_code == 303, done.text[:300]
        assert "No messages selected." in client.get(done.headers["location"]).text
    assert row_counts(db) == before


def test_user_create_command(
    db: Database, settings: Settings, clock: FrozenClock, tmp_path: Path
) -> None:
    configure(db, clock, tmp_path)
    runner = CliRunner()
    url = settings.database_url
    created = runner.invoke(
        main,
        [
            "--database-url",
            url,
            "user",
            "create",
            "--agency",
            A,
            "--username",
            "clerk",
            "--password-stdin",
        ],
        input="a long enough password\n",
    )
    assert created.exit_code == 0, created.output
    assert f"created staff user clerk for {A}" in created.output
    prompted = runner.invoke(
        main,
        ["--database-url", url, "user", "create", "--admin", "--username", "boss"],
        input="another good password\nanother good password\n",
    )
    assert prompted.exit_code == 0, prompted.output
    assert "another good password" not in prompted.output  # the prompt hides the input
    both = runner.invoke(
        main, ["--database-url", url, "user", "create", "--admin", "--agency", A, "--username", "x"]
    )
    assert both.exit_code == 2
    taken = runner.invoke(
        main,
        [
            "--database-url",
            url,
            "user",
            "create",
            "--admin",
            "--username",
            "boss",
            "--password-stdin",
        ],
        input="another good password\n",
    )
    assert taken.exit_code != 0
