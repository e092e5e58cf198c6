"""The real `patronlink` command: migrate, demo, token, serve, and what the logs show."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest

from patronlink.services.demo import DEMO_INBOUND_PASSWORD
from tests.support.processes import free_port, start, stop, wait_for_health
from tests.support.processes import run_cli as run


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "PATRONLINK_DATABASE_URL": f"sqlite:///{tmp_path / 'var' / 'p.db'}"}


def test_fresh_start_serves_health_and_demo_data(env: dict[str, str], tmp_path: Path) -> None:
    not_migrated = run(["demo"], env)
    assert not_migrated.returncode == 1
    assert "patronlink db upgrade" in not_migrated.stderr
    assert run(["db", "upgrade"], env).returncode == 0
    assert "created agency DK-761500" in run(["demo"], env).stdout
    assert "loaded already" in run(["demo"], env).stdout
    token = run(["token", "create", "--name", "e2e"], env).stdout.strip()
    assert token.startswith("plk_")
    unknown = run(["token", "create", "--agency", "DK-000000", "--name", "x"], env)
    assert unknown.returncode == 1
    assert "agency 'DK-000000' does not exist" in unknown.stderr

    port = free_port()
    log_path = tmp_path / "serve.log"
    server = start(["serve", "--port", str(port), "--no-worker"], env, log_path)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for_health(base, server, log_path)
        patrons = httpx.get(
            f"{base}/api/v1/agencies/761500/patrons",
            headers={"Authorization": f"Bearer {token}"},
            timeout=5,
        )
        assert patrons.status_code == 200
        assert {p["name"] for p in patrons.json()} >= {"Karen Jensen", "Oskar Jensen"}
        httpx.get(f"{base}/healthz", params={"user": "sms", "password": "hunter2-secret"})
        inbound = {
            "user": "sms",
            "shortcode": "1910",
            "countrycode": "45",
            "number": "52903991",
            "text": "Horsens forny alle",
        }
        ok = httpx.get(
            f"{base}/rest/DK-761500/smsgateway",
            params={**inbound, "password": DEMO_INBOUND_PASSWORD},
        )
        assert (ok.status_code, ok.content) == (200, b"")
        wrong = httpx.get(
            f"{base}/rest/DK-761500/smsgateway", params={**inbound, "password": "wrong-secret-xyz"}
        )
        assert wrong.status_code == 401
    finally:
        stop(server)
    output = log_path.read_text()
    assert "/api/v1/agencies/761500/patrons" in output
    assert "password=***" in output
    assert "hunter2-secret" not in output
    assert DEMO_INBOUND_PASSWORD not in output
    assert "wrong-secret-xyz" not in output
    assert "/rest/DK-761500/smsgateway" in output
    assert token not in output


def test_cli_errors_are_one_line_not_tracebacks(env: dict[str, str], tmp_path: Path) -> None:
    bad = run(
        ["--database-url", "postgresql+psycopg://nobody@127.0.0.1:1/none", "db", "upgrade"], env
    )
    assert bad.returncode == 1
    assert bad.stderr.startswith("patronlink: cannot use the database")
    assert "Traceback" not in bad.stderr
    config = tmp_path / "c.toml"
    config.write_text('[[agencies]]\nid = "DK-761500"\nname = "X"\ncolour = "red"\n')
    checked = run(["config", "apply", "--check", str(config)], env)
    assert checked.returncode == 2
    assert "key agencies[0].colour, line 4: unknown key 'colour'" in checked.stderr
