"""Patron import of the files FOLIO and Koha publish, end to end on SQLite and PostgreSQL: warnings
beside errors, safety stops that show, Koha's dates and numbering, FOLIO's flags, the mapping."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from prometheus_client import CollectorRegistry
from sqlalchemy import select

from patronlink.cli import main
from patronlink.domain.import_runs import RunStatus, Trigger
from patronlink.domain.patron import new_patron
from patronlink.services.access import create_token
from patronlink.services.import_metrics import ImportMetrics
from patronlink.services.import_patrons import READER_PROCESS_FROM, RunReport, run_import
from patronlink.settings import Settings
from patronlink.storage import tables
from patronlink.storage.database import Database
from patronlink.web.app import create_app
from tests.conftest import FrozenClock
from tests.integration.import_fixtures import AGENCY, SOURCE, add_source, patrons_by_id
from tests.support import field_samples as samples
from tests.support.feeds import folio_body, folio_user
from tests.support.live_server import live_server
from tests.support.staff_site import add_users, configure, log_in, post_form


@pytest.fixture(params=[READER_PROCESS_FROM, 0], ids=["in-process", "reader-process"])
def reading(request: pytest.FixtureRequest) -> int:
    value: int = request.param
    return value


def run(
    db: Database, clock: FrozenClock, reading: int, tmp_path: Path, body: bytes, **kw: Any
) -> RunReport:
    path = tmp_path / "feed"
    path.write_bytes(body)
    return run_import(
        db,
        SOURCE,
        trigger=Trigger.CLI,
        clock=clock,
        environ={},
        file=path,
        reader_process_from=reading,
        **kw,
    )


def test_a_bad_phone_is_a_warning_the_patron_is_imported(
    db: Database, clock: FrozenClock, tmp_path: Path, reading: int
) -> None:
    add_source(db, clock, "file:///x.json")
    metrics = ImportMetrics(CollectorRegistry())
    report = run(db, clock, reading, tmp_path, samples.FOLIO_CLIENT_MOBILE, observer=metrics)
    assert report.status is RunStatus.SUCCEEDED_WITH_WARNINGS
    assert (report.counts.created, report.counts.failed, report.counts.warnings) == (1, 0, 1)
    patron = patrons_by_id(db)["4268755EWL"]
    assert patron.phones_unparsed == ("86 130 6785 1536",)
    assert patron.phones == ()
    assert patron.sms_number is None
    with db.engine.connect() as conn:
        # Never texted nor matched on: the number is not among the patron's numbers.
        numbers = conn.execute(select(tables.patron_phones.c.number)).scalars().all()
        assert numbers == []
        (finding,) = conn.execute(select(tables.import_run_errors)).all()
    assert (finding.severity, finding.field, finding.record_number) == ("warning", "phones[1]", 1)
    assert metrics.records.labels(SOURCE, "warnings")._value.get() == 1
    assert metrics.runs.labels(SOURCE, "succeeded_with_warnings")._value.get() == 1
    # The next run finds the user unchanged; the number stays where staff see it.
    again = run(db, clock, reading, tmp_path, samples.FOLIO_CLIENT_MOBILE)
    assert again.counts.unchanged == 1
    assert patrons_by_id(db)["4268755EWL"].phones_unparsed == ("86 130 6785 1536",)


def test_safety_stop_is_succeeded_with_warnings_exit_4(
    db: Database, settings: Settings, clock: FrozenClock, tmp_path: Path
) -> None:
    add_source(db, clock, "file:///x.json", deactivate_missing=True)
    users = [folio_user(i) for i in range(10)]
    feed = tmp_path / "feed.json"
    feed.write_bytes(folio_body(users))
    runner = CliRunner()
    base = ["--database-url", settings.database_url, "import", "run", SOURCE, "--file", str(feed)]
    first = runner.invoke(main, base)
    assert first.exit_code == 0, first.output
    feed.write_bytes(folio_body(users[:4]))  # 60% missing
    stopped = runner.invoke(main, base)
    assert stopped.exit_code == 4, stopped.output
    assert "succeeded_with_warnings" in stopped.output
    assert "none were deactivated" in stopped.output
    assert all(p.status.value == "active" for p in patrons_by_id(db).values())


def test_koha_import_t_file_with_us_dates(
    db: Database, clock: FrozenClock, tmp_path: Path, reading: int
) -> None:
    add_source(db, clock, "file:///x.csv", format="koha-csv")
    body = samples.koha_file(
        samples.KOHA_IMPORT_T_ATTRIBUTES_HEADER,
        samples.KOHA_IMPORT_T_US.replace("1000,", "1000,", 1) + ",",
        samples.KOHA_IMPORT_T_ATTRIBUTES,
    )
    report = run(db, clock, reading, tmp_path, body)
    assert report.status is RunStatus.SUCCEEDED_WITH_WARNINGS, report.errors
    assert report.counts.created == 2
    assert report.counts.warnings == 2
    assert "dates read as us" in (report.message or "")
    nancy, donna = patrons_by_id(db)["1000"], patrons_by_id(db)["1001"]
    assert str(nancy.expiry_date) == "2015-07-01"
    assert str(nancy.birth_date) == "1965-10-16"
    assert nancy.phones_unparsed == ("7-(388)559-6763", "3-(373)151-4471")
    assert donna.extra["attribute.HOBBY"] == "chess"
    assert str(donna.birth_date) == "1970-09-19"


def test_koha_ambiguous_dates_fail_the_run_and_change_nothing(
    db: Database, clock: FrozenClock, tmp_path: Path, reading: int
) -> None:
    add_source(db, clock, "file:///x.csv", format="koha-csv")
    line = samples.KOHA_IMPORT_T_US.replace("10/16/1965", "").replace("12/28/2014", "")
    report = run(
        db, clock, reading, tmp_path, samples.koha_file(samples.KOHA_IMPORT_T_HEADER, line)
    )
    assert report.status is RunStatus.FAILED
    assert "set date_format" in (report.message or "")
    assert patrons_by_id(db) == {}


def test_koha_rows_without_a_number_get_one_and_keep_it(
    db: Database, clock: FrozenClock, tmp_path: Path, reading: int
) -> None:
    add_source(db, clock, "file:///x.csv", format="koha-csv", patron_id_prefix="HB-")
    body = samples.koha_file(
        "surname,firstname,branchcode,categorycode,email",
        "Jensen,Karen,CPL,PT,k@example.org",
        "Hansen,Mette,CPL,PT,",
    )
    with db.transaction() as repos:  # a number taken already is skipped
        repos.patrons.add(
            new_patron(agency_id=AGENCY, country_code="45", patron_id="HB-1", name="Staff"),
            clock(),
        )
    first = run(db, clock, reading, tmp_path, body)
    assert first.status is RunStatus.SUCCEEDED, first.errors
    assert first.counts.created == 2
    by_name = {p.name: p.patron_id for p in patrons_by_id(db).values()}
    assert by_name == {"Staff": "HB-1", "Karen Jensen": "HB-2", "Mette Hansen": "HB-3"}
    # Next export, same people, one changed: found again, numbers kept, nobody duplicated.
    changed = body.replace(b"k@example.org", b"karen@example.org")
    second = run(db, clock, reading, tmp_path, changed)
    assert (second.counts.created, second.counts.updated, second.counts.unchanged) == (0, 1, 1)
    patrons = patrons_by_id(db)
    assert patrons["HB-2"].email == "karen@example.org"
    assert len(patrons) == 3


def test_folio_update_only_present_fields_keeps_what_is_absent(
    db: Database, clock: FrozenClock, tmp_path: Path, reading: int
) -> None:
    add_source(db, clock, "file:///x.json")
    full = [
        {"username": "usul", "externalSystemId": "10191", "active": True,
         "expirationDate": "2030-01-01",
         "personal": {"firstName": "Paul", "lastName": "Atreides", "email": "paul@arrakis.org",
                      "mobilePhone": "52903991", "preferredContactTypeId": "003"}},
        {"username": "chani", "externalSystemId": "10192",
         "personal": {"firstName": "Chani", "lastName": "Kynes", "email": "chani@arrakis.org"}},
    ]  # fmt: skip
    run(db, clock, reading, tmp_path, json.dumps({"users": full}).encode())
    before = patrons_by_id(db)
    assert before["usul"].want_sms is True  # contact type 003: text
    report = run(db, clock, reading, tmp_path, samples.FOLIO_USER_IMPORT_TEST)
    # FOLIO's sample ends with a user that has only a username: no name, so not a new patron.
    assert report.status is RunStatus.SUCCEEDED_WITH_ERRORS
    assert [(e.number, e.field) for e in report.errors] == [(3, "name")]
    assert report.counts.updated == 2
    after = patrons_by_id(db)
    usul = after["usul"]
    assert usul.name == "Usul Atreides"  # preferredFirstName
    assert usul.email == "paul@arrakis.org"  # absent from the feed: kept
    assert usul.sms_number == "+4552903991"
    assert usul.want_sms is True
    assert str(usul.expiry_date) == "2030-01-01"
    assert usul.extra["custom.classYear"] == "2023"
    assert after["chani"].extra["pronouns"] == "He/Him"
    assert after["chani"].email == "chani@arrakis.org"
    # Without the flag, a changed user clears what it lacks.
    plain = samples.FOLIO_USER_IMPORT_TEST.replace(b'"updateOnlyPresentFields": true', b"")
    plain = plain.replace(b'"deactivateMissingUsers": false,', b'"deactivateMissingUsers": false')
    plain = plain.replace(b'"Atreides"', b'"Atreides II"')
    run(db, clock, reading, tmp_path, plain)
    assert patrons_by_id(db)["usul"].email is None


def test_folio_flag_after_the_users_of_a_large_feed_is_honoured(
    db: Database, clock: FrozenClock, tmp_path: Path
) -> None:
    add_source(db, clock, "file:///x.json")
    users = [folio_user(i) for i in range(3)]
    run(db, clock, READER_PROCESS_FROM, tmp_path, folio_body(users))
    emails = {k: p.email for k, p in patrons_by_id(db).items()}
    assert all(emails.values())
    bare = [folio_user(i) for i in range(3)]
    for user in bare:
        del user["personal"]["email"]
    bare[0]["personal"]["lastName"] = "Changed"
    body = json.dumps({"users": bare, "updateOnlyPresentFields": True}).encode()
    # Read in the reader process with a 16-byte first look: the flag comes after the users,
    # when they have been written already; the run puts back what they lack.
    report = run(db, clock, 16, tmp_path, body)
    assert report.status is RunStatus.SUCCEEDED, report.message
    assert (report.counts.updated, report.counts.unchanged) == (1, 2)
    after = patrons_by_id(db)
    assert {k: p.email for k, p in after.items()} == emails
    assert after["1000000"].name.endswith("Changed")


def test_mapping_from_the_config_gives_the_ids(
    db: Database, clock: FrozenClock, tmp_path: Path, reading: int
) -> None:
    add_source(
        db,
        clock,
        "file:///x.csv",
        format="koha-csv",
        mapping={"patron_id": "studentno", "external_id": "studentno"},
    )
    body = samples.koha_file("cardnumber,surname,studentno", "c1,Jensen,S-1", "c2,Hansen,S-2")
    report = run(db, clock, reading, tmp_path, body)
    assert report.counts.created == 2
    assert set(patrons_by_id(db)) == {"S-1", "S-2"}


def test_run_json_has_warnings_and_findings(
    db: Database, settings: Settings, clock: FrozenClock, tmp_path: Path
) -> None:
    add_source(db, clock, "file:///x.json")
    bad = folio_user(1, expirationDate="never")
    bad["personal"]["firstName"] = bad["personal"]["lastName"] = ""
    mobile = folio_user(2)
    mobile["personal"]["mobilePhone"] = "12"
    report = run(db, clock, READER_PROCESS_FROM, tmp_path, folio_body([folio_user(0), bad, mobile]))
    assert report.status is RunStatus.SUCCEEDED_WITH_ERRORS
    token = create_token(db, "t", AGENCY, clock)
    with live_server(create_app(settings, db, clock)) as url, httpx.Client(base_url=url) as c:
        auth = {"Authorization": f"Bearer {token}"}
        got = c.get(f"/api/v1/import-sources/{SOURCE}/runs/{report.run_id}", headers=auth).json()
        patron = c.get(f"/api/v1/agencies/{AGENCY}/patrons/1000002", headers=auth).json()
    # Shown to staff as written, and not among the numbers texted.
    assert patron["phones_unparsed"] == ["12"]
    assert "12" not in patron["phones"]
    assert (got["failed"], got["warnings"]) == (1, 1)
    findings = [(e["record_number"], e["field"], e["severity"]) for e in got["errors"]]
    assert findings == [
        (2, "name", "error"),
        (2, "expiry_date", "error"),
        (3, "phones[1]", "warning"),
    ]


def test_config_apply_checks_the_mapping(db: Database, settings: Settings, tmp_path: Path) -> None:
    example = (Path(__file__).parent.parent / "fixtures" / "design_example.toml").read_text()
    env = {
        "HORSENS_SMS_PASSWORD": "gateway-secret-1",
        "HORSENS_SMS_INBOUND_PASSWORD": "inbound-secret-1",
        "UCL_PASSWORD": "ucl-secret-1",
    }
    runner = CliRunner()

    def apply(text: str) -> tuple[int, str]:
        path = tmp_path / "config.toml"
        path.write_text(text)
        args = ["--database-url", settings.database_url, "config", "apply", str(path)]
        result = runner.invoke(main, args, env=env)
        return result.exit_code, result.output

    koha = example.replace('format = "folio-json"', 'format = "koha-csv"')
    assert koha != example
    code, output = apply(koha + '\n[import_sources.mapping]\npatron_id = "customFields.id"\n')
    assert code == 2, output
    assert "is not a column name" in output
    code, output = apply(
        example + '\ndate_format = "metric"\n[import_sources.mapping]\n'
        'patron_id = "customFields.studentId"\n'
    )
    assert code == 0, output
    with db.transaction() as repos:
        found = repos.import_sources.get("ucl-students")
    assert found is not None
    assert found[1]["mapping"]["patron_id"] == "customFields.studentId"
    assert found[1]["date_format"] == "metric"


def test_staff_ui_shows_warnings_amber_in_danish_and_english(
    db: Database, settings: Settings, clock: FrozenClock, tmp_path: Path
) -> None:
    configure(db, clock, tmp_path)
    add_users(db, clock)
    (tmp_path / "students.json").write_bytes(samples.FOLIO_CLIENT_MOBILE)
    report = run_import(db, "ucl-students", trigger=Trigger.CLI, clock=clock, environ={})
    assert report.status is RunStatus.SUCCEEDED_WITH_WARNINGS
    with live_server(create_app(settings, db, clock)) as url, httpx.Client(base_url=url) as c:
        log_in(c, "anna")
        page = c.get(f"/staff/imports/runs/{report.run_id}").text
        assert 'class="status run-succeeded_with_warnings">succeeded with warnings<' in page
        assert '<dd id="warnings">1</dd>' in page
        assert '<tr class="finding-warning"><td>1</td><td>4268755</td><td>warning</td>' in page
        patron = c.get(f"/staff/patrons/{AGENCY}/4268755EWL").text
        assert "Unreadable phone numbers (never texted)" in patron
        assert '<dd id="phones-unparsed">86 130 6785 1536</dd>' in patron
        css = c.get("/staff/static/staff.css").text
        post_form(c, "/staff/language", language="da")
        dansk = c.get(f"/staff/imports/runs/{report.run_id}").text
    assert ">gennemført med advarsler<" in dansk
    assert "<td>advarsel</td>" in dansk
    assert re.search(r"\.run-succeeded_with_warnings[^{]*\{ color: var\(--amber\)", css)
    assert "--amber: #b26a00" in css
