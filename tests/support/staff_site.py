"""A two-library deployment for the staff UI tests: configuration, users, a logged-in client."""

from __future__ import annotations

import re
from pathlib import Path

import httpx

from patronlink.config.loader import load_config
from patronlink.services.configure import apply_config
from patronlink.services.demo import load_demo
from patronlink.services.staff_users import create_staff_user
from patronlink.storage.database import Database
from tests.conftest import FrozenClock

A, B = "DK-761500", "DK-775100"
PASSWORD = "correct horse battery"
ENV_SECRET = "gateway-secret-from-env"
PLAIN_SECRET = "plain-gateway-secret"
ENVIRON = {"STAFF_UI_SMS_PASSWORD": ENV_SECRET}

_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def configure(
    db: Database, clock: FrozenClock, tmp_path: Path, gateway_url: str = "http://127.0.0.1:9/"
) -> None:
    """The demo library (A) on the XML gateway, a second library (B), an import source of A."""
    load_demo(db, clock)
    feed = tmp_path / "students.json"
    feed.write_text('{"users": [], "totalRecords": 0}')
    config = tmp_path / "libraries.toml"
    config.write_text(
        f"""
[[agencies]]
id = "{A}"
name = "Horsens Bibliotek"
timezone = "Europe/Copenhagen"
language = "da"
country_code = "45"
branches = [{{ code = "HOR", name = "Hovedbiblioteket" }}]

[agencies.sms]
driver = "xml"
url = "{gateway_url}"
username = "horsens"
password = "${{STAFF_UI_SMS_PASSWORD}}"
max_attempts = 3

[agencies.renewal]
sms_enabled = true

[[agencies]]
id = "{B}"
name = "Aarhus Bibliotekerne"
timezone = "Europe/Copenhagen"
language = "da"
country_code = "45"

[agencies.sms]
driver = "xml"
url = "http://127.0.0.1:9/"
username = "aarhus"
password = "{PLAIN_SECRET}"

[[import_sources]]
id = "ucl-students"
agency = "{A}"
url = "{feed.as_uri()}"
format = "folio-json"
deactivate_missing = false
"""
    )
    loaded = load_config(config, ENVIRON, [])
    apply_config(db, loaded, ENVIRON, clock)


def add_users(db: Database, clock: FrozenClock) -> None:
    create_staff_user(db, "anna", PASSWORD, A, clock, language="en")
    create_staff_user(db, "bo", PASSWORD, B, clock, language="da")
    create_staff_user(db, "root", PASSWORD, None, clock, language="en")


def csrf_of(page: httpx.Response) -> str:
    found = _CSRF.search(page.text)
    assert found, f"no CSRF token on {page.url}"
    return found.group(1)


def log_in(client: httpx.Client, username: str, password: str = PASSWORD) -> httpx.Response:
    form = client.get("/staff/login")
    return client.post(
        "/staff/login",
        data={"username": username, "password": password, "csrf_token": csrf_of(form)},
    )


def post_form(client: httpx.Client, path: str, **data: str | list[str]) -> httpx.Response:
    """POST a form the way the browser would: with the CSRF token of the session."""
    token = csrf_of(client.get("/staff/login" if "/login" in path else "/staff"))
    return client.post(path, data={**data, "csrf_token": token})
