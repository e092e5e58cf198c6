"""Staff API tokens (issue 18, item 3): list, revoke, expiry and last use; CLI and staff UI."""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from patronlink.cli import main
from patronlink.domain.errors import ValidationError
from patronlink.services.access import create_token
from patronlink.settings import Settings
from patronlink.storage.database import Database
from patronlink.web.app import create_app
from tests.conftest import FrozenClock
from tests.support.live_server import live_server
from tests.support.staff_site import A, add_users, configure, log_in, post_form


@pytest.fixture
def client(
    db: Database, settings: Settings, clock: FrozenClock, tmp_path: Path
) -> Iterator[httpx.Client]:
    configure(db, clock, tmp_path)
    add_users(db, clock)
    with live_server(create_app(settings, db, clock)) as url, httpx.Client(base_url=url) as c:
        yield c


def works(client: httpx.Client, token: str) -> bool:
    response = client.get("/api/v1/agencies", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code in (200, 401), response.text
    return response.status_code == 200


def test_expiry_and_last_use(client: httpx.Client, db: Database, clock: FrozenClock) -> None:
    token = create_token(db, "short", A, clock, expires_at=clock() + dt.timedelta(hours=1))
    url = ["--database-url", db.engine.url.render_as_string(hide_password=False)]
    runner = CliRunner()
    before = runner.invoke(main, [*url, "token", "list", "--json"])
    assert '"last_used_at": null' in before.stdout
    assert works(client, token)
    used = json.loads(runner.invoke(main, [*url, "token", "list", "--json"]).stdout)
    assert used["last_used_at"].startswith("2026-11-23 10:00")
    clock.advance(minutes=61)
    assert not works(client, token)
    listed = runner.invoke(main, [*url, "token", "list"])
    assert re.search(r"DK-761500\s+expired", listed.stdout), listed.stdout
    with pytest.raises(ValidationError, match="in the past"):
        create_token(db, "late", A, clock, expires_at=clock() - dt.timedelta(seconds=1))


def test_cli_create_list_revoke(client: httpx.Client, db: Database) -> None:
    url = ["--database-url", db.engine.url.render_as_string(hide_password=False)]
    runner = CliRunner()
    made = runner.invoke(main, [*url, "token", "create", "--name", "leaky", "--expires", "90d"])
    assert made.exit_code == 0, made.output
    token = made.stdout.strip()
    assert works(client, token)
    listed = runner.invoke(main, [*url, "token", "list"]).stdout
    assert listed.splitlines()[0].split()[:3] == ["ID", "AGENCY", "STATE"]
    assert token not in listed  # the secret is never listed
    line = next(li for li in listed.splitlines() if li.endswith("leaky"))
    token_id = line.split()[0]
    assert "(all)" in line
    assert "active" in line
    revoked = runner.invoke(main, [*url, "token", "revoke", token_id])
    assert revoked.stdout == f"token {token_id} (leaky) revoked\n"
    assert not works(client, token)
    again = runner.invoke(main, [*url, "token", "revoke", token_id])
    assert again.exit_code != 0
    bad = runner.invoke(main, [*url, "token", "create", "--name", "x", "--expires", "soon"])
    assert bad.exit_code == 2
    assert "--expires 'soon'" in bad.stderr


def test_staff_ui_tokens_for_administrators(
    client: httpx.Client, db: Database, clock: FrozenClock
) -> None:
    log_in(client, "anna")
    assert client.get("/staff/tokens").status_code == 404
    client.cookies.clear()
    log_in(client, "root")
    created = post_form(client, "/staff/tokens", name="kiosk", agency=A, expires="2026-12-31")
    assert created.status_code == 200
    token = re.search(r'<code id="new-token">([^<]+)</code>', created.text)
    assert token is not None
    assert works(client, token.group(1))
    page = client.get("/staff/tokens").text
    assert token.group(1) not in page  # shown once only
    row = re.search(r'<tr id="token-(\d+)">(.*?)</tr>', page, re.S)
    assert row is not None
    assert "kiosk" in row.group(2)
    assert "2027-01-01 00:00" in row.group(2) or "2026-12-31 23:00" in row.group(2)
    done = post_form(client, f"/staff/tokens/{row.group(1)}/revoke")
    assert done.status_code in (200, 303)
    assert "Token kiosk is revoked." in client.get("/staff/tokens").text
    assert not works(client, token.group(1))
    admin = {"Authorization": f"Bearer {create_token(db, 'reader', None, clock)}"}
    entries = client.get("/api/v1/audit", params={"object_kind": "token"}, headers=admin).json()
    assert [(e["action"], e["actor"]) for e in entries][:2] == [
        ("token.create", "patronlink"),
        ("token.revoke", "root"),
    ]
