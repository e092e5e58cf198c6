"""Patron import over real HTTP(S): each auth kind, each way a source fails, CLI and staff API."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from patronlink.cli import main
from patronlink.config.schema import AgencySettings
from patronlink.domain.import_runs import RunStatus, Trigger
from patronlink.services.access import create_token
from patronlink.services.import_patrons import READER_PROCESS_FROM, run_import
from patronlink.settings import Settings
from patronlink.storage.database import Database
from patronlink.web.app import create_app
from tests.conftest import FrozenClock
from tests.integration.import_fixtures import SOURCE, add_source, patron_rows, patrons_by_id
from tests.support.feeds import folio_body, folio_user
from tests.support.live_server import live_server
from tests.support.source_server import (
    Certificates,
    Feed,
    make_certificates,
    source_server,
)

USERS = [folio_user(i) for i in range(10)]
BODY = folio_body(USERS)


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("certs"))


def run(db: Database, clock: FrozenClock, environ: dict[str, str] | None = None) -> RunStatus:
    return run_import(db, SOURCE, trigger=Trigger.STAFF, clock=clock, environ=environ or {}).status


@pytest.mark.parametrize(
    ("auth", "expected", "env"),
    [
        (
            {"type": "basic", "username": "cicero", "password": "${UCL_PASSWORD}"},
            ("basic", "cicero:s3cret"),
            {"UCL_PASSWORD": "s3cret"},
        ),
        ({"type": "bearer", "token": "tok-123"}, ("bearer", "tok-123"), {}),
        (
            {"type": "header", "name": "X-Api-Key", "value": "${KEY}"},
            ("header", "X-Api-Key: k-9"),
            {"KEY": "k-9"},
        ),
    ],
    ids=["basic", "bearer", "header"],
)
def test_auth_kinds_over_https(
    db: Database,
    clock: FrozenClock,
    certificates: Certificates,
    monkeypatch: pytest.MonkeyPatch,
    auth: dict[str, str],
    expected: tuple[str, str],
    env: dict[str, str],
) -> None:
    with source_server(certificates) as server:
        server.feeds["/patrons.json"] = Feed(BODY, auth=expected)
        add_source(db, clock, server.url + "/patrons.json", auth=auth)
        # TLS is verified: a certificate of an unknown CA makes the source unavailable.
        report = run_import(db, SOURCE, trigger=Trigger.STAFF, clock=clock, environ=env)
        assert report.status is RunStatus.SOURCE_UNAVAILABLE
        assert "CERTIFICATE_VERIFY_FAILED" in (report.message or "")
        assert patrons_by_id(db) == {}
        # Trusted the way an operator trusts a private CA: OpenSSL's SSL_CERT_FILE.
        monkeypatch.setenv("SSL_CERT_FILE", str(certificates.ca))
        assert run(db, clock, env) is RunStatus.SUCCEEDED
        assert len(patrons_by_id(db)) == 10
        wrong = {
            k: (v + "x" if k in ("password", "token", "value") else v) for k, v in auth.items()
        }
        add_source(db, clock, server.url + "/patrons.json", auth=wrong)
        report = run_import(db, SOURCE, trigger=Trigger.STAFF, clock=clock, environ=env)
        assert report.status is RunStatus.SOURCE_UNAVAILABLE
        assert "401" in (report.message or "")


def test_mtls(db: Database, clock: FrozenClock, certificates: Certificates) -> None:
    with source_server(certificates, require_client_cert=True) as server:
        server.feeds["/patrons.json"] = Feed(BODY)
        auth = {
            "type": "mtls",
            "cert": str(certificates.client_cert),
            "key": str(certificates.client_key),
            "ca_bundle": str(certificates.ca),
        }
        add_source(db, clock, server.url + "/patrons.json", auth=auth)
        assert run(db, clock) is RunStatus.SUCCEEDED
        assert len(patrons_by_id(db)) == 10
        # Without a client certificate the server refuses the handshake.
        add_source(db, clock, server.url + "/patrons.json")
        assert run(db, clock) is RunStatus.SOURCE_UNAVAILABLE


@pytest.fixture
def server() -> Iterator[object]:
    with source_server() as s:
        yield s


@pytest.mark.parametrize(
    ("feed", "status", "reason"),
    [
        (Feed(b"oops", status=500), RunStatus.SOURCE_UNAVAILABLE, "HTTP 500"),
        (Feed(BODY, auth=("bearer", "x")), RunStatus.SOURCE_UNAVAILABLE, "HTTP 401"),
        (Feed(BODY, delay=1.5), RunStatus.SOURCE_UNAVAILABLE, "timed out"),
        (Feed(BODY[: len(BODY) // 2]), RunStatus.FAILED, "not complete FOLIO JSON"),
        (Feed(BODY[: len(BODY) // 2], declared_length=len(BODY)), RunStatus.SOURCE_UNAVAILABLE, ""),
        (Feed(b"<html>maintenance</html>"), RunStatus.FAILED, "FOLIO JSON"),
    ],
    ids=["500", "401", "timeout", "truncated-json", "cut-connection", "malformed"],
)
@pytest.mark.parametrize("reading", [READER_PROCESS_FROM, 0], ids=["in-process", "reader-process"])
def test_a_failing_source_changes_no_patron(
    db: Database,
    clock: FrozenClock,
    server: object,
    feed: Feed,
    status: RunStatus,
    reason: str,
    reading: int,
) -> None:
    srv = server
    assert hasattr(srv, "feeds")
    srv.feeds["/ok.json"] = Feed(folio_body([folio_user(i, variant=1) for i in range(3, 13)]))  # type: ignore[attr-defined]
    url = srv.url  # type: ignore[attr-defined]
    add_source(db, clock, url + "/ok.json", read_timeout=0.5, deactivate_missing=True)
    assert run(db, clock) is RunStatus.SUCCEEDED
    before = patron_rows(db)
    srv.feeds["/bad.json"] = feed  # type: ignore[attr-defined]
    add_source(db, clock, url + "/bad.json", read_timeout=0.5, deactivate_missing=True)
    report = run_import(
        db,
        SOURCE,
        trigger=Trigger.SCHEDULE,
        clock=clock,
        environ={},
        reader_process_from=reading,
    )
    assert report.status is status
    assert reason in (report.message or "")
    assert patron_rows(db) == before


def test_unreachable_source(db: Database, clock: FrozenClock) -> None:
    add_source(db, clock, "http://127.0.0.1:9/patrons.json", connect_timeout=0.5)
    assert run(db, clock) is RunStatus.SOURCE_UNAVAILABLE


def test_cli_dry_run_and_exit_codes(
    db: Database, settings: Settings, clock: FrozenClock, tmp_path: Path
) -> None:
    add_source(db, clock, "file:///nonexistent.json")
    feed = tmp_path / "feed.json"
    feed.write_bytes(folio_body(USERS[:3]))
    runner = CliRunner()
    base = ["--database-url", settings.database_url, "import", "run", SOURCE]
    dry = runner.invoke(main, [*base, "--dry-run", "--file", str(feed)])
    assert dry.exit_code == 0, dry.output
    assert "would create" in dry.output
    assert "dry run" in dry.output
    assert patrons_by_id(db) == {}
    real = runner.invoke(main, [*base, "--file", str(feed)])
    assert real.exit_code == 0, real.output
    assert re.search(r"^created\s+3$", real.output, re.MULTILINE)
    assert len(patrons_by_id(db)) == 3
    feed.write_bytes(folio_body([folio_user(0, expirationDate="soon")]))
    with_errors = runner.invoke(main, [*base, "--file", str(feed)])
    assert with_errors.exit_code == 3, with_errors.output
    unavailable = runner.invoke(main, base)
    assert unavailable.exit_code == 1
    assert "source_unavailable" in unavailable.output


def test_cli_lists_runs_and_every_record_error(
    db: Database, settings: Settings, clock: FrozenClock, tmp_path: Path
) -> None:
    add_source(db, clock, "file:///nonexistent.json")
    feed = tmp_path / "feed.json"
    bad = [folio_user(100 + i, expirationDate=f"soon {i}") for i in range(60)]
    feed.write_bytes(folio_body([*USERS[:2], *bad]))
    runner = CliRunner()
    url = ["--database-url", settings.database_url]
    none_yet = runner.invoke(main, [*url, "import", "runs"])
    assert none_yet.exit_code == 0, none_yet.output
    assert len(none_yet.stdout.splitlines()) == 1  # the header
    assert none_yet.stderr == ""  # nothing left out of an empty list
    done = runner.invoke(main, [*url, "import", "run", SOURCE, "--file", str(feed)])
    assert done.exit_code == 3, done.output
    shown = re.search(r"^run\s+(\d+)$", done.stdout, re.MULTILINE)
    assert shown is not None, done.stdout
    run_id = int(shown.group(1))
    assert f"... and 10 more record errors (patronlink import errors {run_id} --all)" in done.stderr

    runs = runner.invoke(main, [*url, "import", "runs"])
    assert runs.exit_code == 0, runs.output
    header, row = runs.stdout.splitlines()
    assert header.split()[:3] == ["ID", "STARTED", "(UTC)"]
    assert row.split()[0] == str(run_id)
    assert "succeeded_with_errors" in row.split()
    as_json = runner.invoke(main, [*url, "import", "runs", SOURCE, "--json"])
    listed = json.loads(as_json.stdout)
    assert listed["id"] == run_id
    assert (listed["created"], listed["failed"]) == (2, 60)
    assert "errors" not in listed

    first = runner.invoke(main, [*url, "import", "errors", str(run_id)])
    assert first.exit_code == 0, first.output
    lines = first.stdout.splitlines()
    assert len(lines) == 50
    assert lines[0].startswith("record 3 [")
    assert "soon 0" in lines[0]
    assert "showing 1-50 of 60; use --all" in first.stderr
    every = runner.invoke(main, [*url, "import", "errors", str(run_id), "--all"])
    assert len(every.stdout.splitlines()) == 60
    assert "soon 59" in every.stdout.splitlines()[-1]
    one = runner.invoke(main, [*url, "import", "errors", str(run_id), "--json", "--offset", "59"])
    finding = json.loads(one.stdout)
    assert finding["record_number"] == 62
    assert finding["severity"] == "error"
    assert "soon 59" in finding["reason"]

    for unknown in (["import", "errors", "99999"], ["import", "runs", "nosuch"]):
        missing = runner.invoke(main, [*url, *unknown])
        assert missing.exit_code != 0
        assert "does not exist" in str(missing.exception or missing.output)


def test_a_nul_in_a_record_fails_that_record_not_the_run(
    db: Database, settings: Settings, clock: FrozenClock, tmp_path: Path
) -> None:
    """PostgreSQL cannot store a NUL: the whole run failed there, and SQLite stored it."""
    feed = tmp_path / "feed.json"
    users = [folio_user(i) for i in range(3)]
    users[1]["personal"]["lastName"] = "Jen\x00sen"
    users[2]["barcode"] = "12\x0034"
    feed.write_bytes(folio_body(users))
    add_source(db, clock, feed.as_uri())
    report = run_import(db, SOURCE, trigger=Trigger.STAFF, clock=clock, environ={})
    assert report.status is RunStatus.SUCCEEDED_WITH_ERRORS
    assert sorted(patrons_by_id(db)) == [users[0]["barcode"]]
    assert [(e.number, e.field) for e in report.errors] == [(2, "last_name"), (3, "patron_id")]
    assert "contains a NUL character" in report.errors[0].reason


def test_staff_api(db: Database, settings: Settings, clock: FrozenClock, tmp_path: Path) -> None:
    feed = tmp_path / "feed.json"
    feed.write_bytes(folio_body([*USERS[:3], folio_user(4, expirationDate="bad")]))
    add_source(db, clock, feed.as_uri())
    from patronlink.domain.agency import Agency

    with db.transaction() as repos:
        repos.agencies.upsert(Agency(id="DK-775100", name="Aarhus"), AgencySettings(), clock())
    own = {"Authorization": f"Bearer {create_token(db, 't', 'DK-761500', clock)}"}
    other = {"Authorization": f"Bearer {create_token(db, 't', 'DK-775100', clock)}"}
    public = settings.model_copy(update={"metrics_public": True})  # /metrics is read below
    with live_server(create_app(public, db, clock)) as url, httpx.Client(base_url=url) as c:
        path = f"/api/v1/import-sources/{SOURCE}/runs"
        assert c.post(path, headers=other).status_code == 403
        assert c.get(path, headers=other).status_code == 403
        assert c.post(path).status_code == 401
        done = c.post(path, params={"wait": "true"}, headers=own)
        assert done.status_code == 200, done.text
        body = done.json()
        assert body["status"] == "succeeded_with_errors"
        assert body["trigger"] == "staff"
        assert (body["created"], body["failed"]) == (3, 1)
        assert body["errors"][0]["record_number"] == 4
        started = c.post(path, headers=own)
        assert started.status_code == 202
        run_id = started.json()["id"]
        for _ in range(200):
            one = c.get(f"{path}/{run_id}", headers=own).json()
            if one["status"] != "running":
                break
            time.sleep(0.05)
        assert one["status"] == "succeeded_with_errors"
        assert one["unchanged"] == 3
        listed = c.get(path, headers=own).json()
        assert [r["id"] for r in listed] == [run_id, body["id"]]
        assert c.get(f"{path}/999999", headers=own).status_code == 404
        assert c.get("/api/v1/import-sources/nope/runs", headers=own).status_code == 403
        metrics = c.get("/metrics").text
        assert "patronlink_import_runs_total" in metrics


def test_staff_api_refuses_a_second_run(
    db: Database, settings: Settings, clock: FrozenClock
) -> None:
    with source_server() as srv:
        srv.feeds["/slow.json"] = Feed(BODY, delay=1.0)
        add_source(db, clock, srv.url + "/slow.json", read_timeout=5)
        token = {"Authorization": f"Bearer {create_token(db, 't', None, clock)}"}
        with live_server(create_app(settings, db, clock)) as url, httpx.Client(base_url=url) as c:
            path = f"/api/v1/import-sources/{SOURCE}/runs"
            first = c.post(path, headers=token)
            assert first.status_code == 202
            second = c.post(path, headers=token)
            assert second.status_code == 409, second.text
            for _ in range(100):
                if (
                    c.get(f"{path}/{first.json()['id']}", headers=token).json()["status"]
                    != "running"
                ):
                    break
                time.sleep(0.05)
            assert c.post(path, params={"wait": "true"}, headers=token).status_code == 200
