"""Synchronisation rules of patron import, from file:// feeds, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from sqlalchemy import select

from patronlink.domain.import_runs import RunStatus, Trigger
from patronlink.domain.patron import PatronStatus, new_patron
from patronlink.services.import_patrons import READER_PROCESS_FROM, RunReport, run_import
from patronlink.storage import tables
from patronlink.storage.database import Database
from tests.conftest import FrozenClock
from tests.integration.import_fixtures import (
    AGENCY,
    SOURCE,
    add_source,
    count,
    patron_rows,
    patrons_by_id,
)
from tests.support.feeds import KOHA_HEADER, folio_body, folio_user, koha_body, koha_row


def feed(tmp_path: Path, body: bytes, name: str = "feed.json") -> Path:
    path = tmp_path / name
    path.write_bytes(body)
    return path


@pytest.fixture(params=[READER_PROCESS_FROM, 0], ids=["in-process", "reader-process"])
def reading(request: pytest.FixtureRequest) -> int:
    """Every rule holds whether the feed is read in-process or in the reader process (these
    feeds are small: 0 sends even them to the reader process)."""
    value: int = request.param
    return value


def run(
    db: Database, clock: FrozenClock, reading: int, path: Path, *, dry_run: bool = False
) -> RunReport:
    return run_import(
        db,
        SOURCE,
        trigger=Trigger.CLI,
        clock=clock,
        environ={},
        dry_run=dry_run,
        file=path,
        reader_process_from=reading,
    )


def test_create_then_unchanged_then_update_only_what_changed(
    db: Database, clock: FrozenClock, tmp_path: Path, reading: int
) -> None:
    add_source(db, clock, "file:///nonexistent.json", deactivate_missing=True)
    users = [folio_user(i) for i in range(5)]
    users[3]["personal"].update(firstName="Søren Ærø", dateOfBirth="1990-02-03")
    first = run(db, clock, reading, feed(tmp_path, folio_body(users)))
    assert first.status is RunStatus.SUCCEEDED, first.message
    assert (first.counts.created, first.counts.updated, first.counts.unchanged) == (5, 0, 0)
    stored = patrons_by_id(db)["1000003"]
    assert stored.name == "Søren Ærø Jensen3"
    assert stored.birth_date == dt.date(1990, 2, 3)
    assert patrons_by_id(db)["1000002"].birth_date is None
    with db.engine.connect() as conn:
        stamps = conn.execute(
            select(tables.patrons.c.created_at, tables.patrons.c.updated_at).where(
                tables.patrons.c.patron_id == "1000003"
            )
        ).one()
    assert tuple(stamps) == (clock(), clock())
    assert stored.phones == ("+4528000003", "+4526000003")
    assert stored.sms_number == "+4526000003"
    assert stored.source == SOURCE
    assert stored.external_id == "ext-0000003"
    assert stored.expiry_date is not None
    assert stored.extra == {"username": "user3", "patron_group": "student"}

    before = patron_rows(db)
    clock.advance(days=1)
    second = run(db, clock, reading, feed(tmp_path, folio_body(users)))
    assert (second.counts.created, second.counts.updated, second.counts.unchanged) == (0, 0, 5)
    assert patron_rows(db) == before  # not even updated_at moved

    users[2] = folio_user(2, variant=1)
    third = run(db, clock, reading, feed(tmp_path, folio_body(users)))
    assert (third.counts.updated, third.counts.unchanged) == (1, 4)
    assert patrons_by_id(db)["1000002"].email == "user2.v1@example.org"


def test_dry_run_lists_changes_and_writes_nothing(
    db: Database, clock: FrozenClock, tmp_path: Path, reading: int
) -> None:
    add_source(db, clock, "file:///x.json", deactivate_missing=True, max_deactivate_fraction=0.5)
    users = [folio_user(i) for i in range(4)]
    run(db, clock, reading, feed(tmp_path, folio_body(users)))
    before = patron_rows(db)
    runs_before = count(db, tables.import_runs)
    changed = [folio_user(0, variant=2), users[1], users[2], folio_user(9)]
    report = run(db, clock, reading, feed(tmp_path, folio_body(changed)), dry_run=True)
    assert report.dry_run
    assert report.run_id is None
    actions = {(c.action, c.patron_id): c.fields for c in report.changes}
    assert actions == {
        ("update", "1000000"): ("email",),
        ("create", "1000009"): (),
        ("deactivate", "1000003"): (),
    }
    assert patron_rows(db) == before
    assert count(db, tables.import_runs) == runs_before


def test_record_errors_are_kept_and_do_not_stop_the_run(
    db: Database, clock: FrozenClock, tmp_path: Path, reading: int
) -> None:
    add_source(db, clock, "file:///x.json")
    bad_phone = folio_user(1)
    bad_phone["personal"]["mobilePhone"] = "12"
    no_name = folio_user(2)
    no_name["personal"]["firstName"] = no_name["personal"]["lastName"] = ""
    bad_date = folio_user(3, expirationDate="30/06/2027")
    duplicate = folio_user(4, externalSystemId="ext-0000000", barcode="999")
    users = [folio_user(0), bad_phone, no_name, bad_date, duplicate, folio_user(5)]
    report = run(db, clock, reading, feed(tmp_path, folio_body(users)))
    assert report.status is RunStatus.SUCCEEDED_WITH_ERRORS
    # A phone number that does not validate is a warning: that patron is imported.
    assert report.counts.created == 3
    assert report.counts.failed == 3
    assert report.counts.warnings == 1
    reasons = {e.number: e.reason for e in report.errors}
    assert set(reasons) == {2, 3, 4, 5}
    assert "not a valid phone number" in reasons[2]
    assert [e.severity.value for e in report.errors if e.number == 2] == ["warning"]
    assert "no name" in reasons[3]
    assert "not a date" in reasons[4]
    assert "more than once" in reasons[5]
    with db.transaction() as repos:
        stored = repos.import_runs.errors(report.run_id or 0)
    assert [e.number for e in stored] == [2, 3, 4, 5]


def test_missing_patrons_are_deactivated_only_when_safe(
    db: Database, clock: FrozenClock, tmp_path: Path, reading: int
) -> None:
    add_source(db, clock, "file:///x.json", deactivate_missing=True, max_deactivate_fraction=0.1)
    users = [folio_user(i) for i in range(20)]
    run(db, clock, reading, feed(tmp_path, folio_body(users)))

    # An empty feed deactivates nobody, and the run says so in its status.
    empty = run(db, clock, reading, feed(tmp_path, folio_body([])))
    assert empty.status is RunStatus.SUCCEEDED_WITH_WARNINGS
    assert empty.counts.deactivated == 0
    assert "empty" in (empty.message or "")

    # 60% missing: more than the limit, nobody goes.
    most_missing = run(db, clock, reading, feed(tmp_path, folio_body(users[:8])))
    assert most_missing.status is RunStatus.SUCCEEDED_WITH_WARNINGS
    assert most_missing.counts.deactivated == 0
    assert "60%" in (most_missing.message or "")

    # A failed record keeps everyone.
    broken = folio_user(0, expirationDate="never")
    with_error = run(db, clock, reading, feed(tmp_path, folio_body([broken, *users[1:19]])))
    assert with_error.counts.deactivated == 0
    assert all(p.status is PatronStatus.ACTIVE for p in patrons_by_id(db).values())

    # One of twenty missing from a clean, complete feed: made inactive, never deleted.
    safe = run(db, clock, reading, feed(tmp_path, folio_body(users[:19])))
    assert safe.counts.deactivated == 1
    gone = patrons_by_id(db)["1000019"]
    assert gone.status is PatronStatus.INACTIVE
    assert count(db, tables.patrons) == 20

    # Back in the feed: active again.
    back = run(db, clock, reading, feed(tmp_path, folio_body(users)))
    assert back.counts.updated == 1
    assert patrons_by_id(db)["1000019"].status is PatronStatus.ACTIVE


def test_deactivation_waits_for_consecutive_missing_runs(
    db: Database, clock: FrozenClock, tmp_path: Path, reading: int
) -> None:
    add_source(
        db, clock, "file:///x.json", deactivate_missing=True, deactivate_after_missing_runs=2
    )
    users = [folio_user(i) for i in range(20)]
    run(db, clock, reading, feed(tmp_path, folio_body(users)))
    assert run(db, clock, reading, feed(tmp_path, folio_body(users[:19]))).counts.deactivated == 0
    assert run(db, clock, reading, feed(tmp_path, folio_body(users[:19]))).counts.deactivated == 1
    # Reappearing resets the count.
    run(db, clock, reading, feed(tmp_path, folio_body(users)))
    assert run(db, clock, reading, feed(tmp_path, folio_body(users[:19]))).counts.deactivated == 0


def test_feed_flag_is_honoured_unless_the_source_overrides_it(
    db: Database, clock: FrozenClock, tmp_path: Path, reading: int
) -> None:
    add_source(db, clock, "file:///x.json")  # deactivate_missing not set: the feed decides
    users = [folio_user(i) for i in range(20)]
    run(db, clock, reading, feed(tmp_path, folio_body(users)))
    kept = run(
        db, clock, reading, feed(tmp_path, folio_body(users[:19], deactivateMissingUsers=False))
    )
    assert kept.counts.deactivated == 0
    assert "off" in (kept.message or "")
    gone = run(
        db, clock, reading, feed(tmp_path, folio_body(users[:19], deactivateMissingUsers=True))
    )
    assert gone.counts.deactivated == 1
    add_source(db, clock, "file:///x.json", deactivate_missing=False)
    overridden = run(
        db, clock, reading, feed(tmp_path, folio_body(users[:18], deactivateMissingUsers=True))
    )
    assert overridden.counts.deactivated == 0


def test_falls_back_to_the_patron_id(
    db: Database, clock: FrozenClock, tmp_path: Path, reading: int
) -> None:
    add_source(db, clock, "file:///x.json")
    with db.transaction() as repos:
        repos.patrons.add(
            new_patron(agency_id=AGENCY, country_code="45", patron_id="1000001", name="By Hand"),
            clock(),
        )
    report = run(db, clock, reading, feed(tmp_path, folio_body([folio_user(0), folio_user(1)])))
    assert (report.counts.created, report.counts.updated) == (1, 1)
    adopted = patrons_by_id(db)["1000001"]
    assert adopted.external_id == "ext-0000001"
    assert adopted.source == SOURCE
    assert count(db, tables.patrons) == 2


def test_an_external_id_changed_by_hand_is_not_unchanged(
    db: Database, clock: FrozenClock, tmp_path: Path, reading: int
) -> None:
    add_source(db, clock, "file:///x.json")
    users = [folio_user(i) for i in range(3)]
    run(db, clock, reading, feed(tmp_path, folio_body(users)))
    with db.engine.begin() as conn:
        conn.execute(
            tables.patrons.update()
            .where(tables.patrons.c.patron_id == "1000001")
            .values(external_id="set-by-hand")
        )
    # The stored digest is the entry's, but the patron no longer has its external id: it is
    # found by its patron id and given the feed's external id again.
    report = run(db, clock, reading, feed(tmp_path, folio_body(users)))
    assert (report.counts.updated, report.counts.unchanged) == (1, 2)
    assert patrons_by_id(db)["1000001"].external_id == "ext-0000001"


def test_a_patron_taken_over_in_a_run_is_not_unchanged_later_in_it(
    db: Database, clock: FrozenClock, tmp_path: Path, reading: int
) -> None:
    add_source(db, clock, "file:///x.json")
    users = [folio_user(i) for i in range(2001)]
    first = run(db, clock, reading, feed(tmp_path, folio_body(users)))
    assert first.counts.created == 2001
    # A new external id with the card number of the last patron comes first; that patron's
    # own, unchanged entry comes last, in the next batch of the run.
    newcomer = folio_user(9999, barcode=users[-1]["barcode"])
    report = run(db, clock, reading, feed(tmp_path, folio_body([newcomer, *users[1:]])))
    assert (report.counts.updated, report.counts.unchanged) == (1, 1999)
    assert [(e.number, e.external_id) for e in report.errors] == [(2001, "ext-0002000")]
    assert "more than once" in report.errors[0].reason
    assert patrons_by_id(db)["1002000"].external_id == "ext-0009999"


def test_koha_csv(db: Database, clock: FrozenClock, tmp_path: Path, reading: int) -> None:
    add_source(db, clock, "file:///x.csv", format="koha-csv")
    rows = [koha_row(i) for i in range(3)]
    rows[2]["dateexpiry"] = "2027-13-45"
    header = [*KOHA_HEADER, "favourite_colour"]
    report = run(db, clock, reading, feed(tmp_path, koha_body(rows, header), "b.csv"))
    assert report.status is RunStatus.SUCCEEDED_WITH_ERRORS
    assert report.counts.created == 2
    assert [e.number for e in report.errors] == [3]
    assert report.message is not None
    assert report.message.count("favourite_colour") == 1
    mette = patrons_by_id(db)["2000001"]
    assert mette.name == "Mette Hansen1"
    assert mette.sms_number == "+4526000001"
    assert mette.want_sms
    assert mette.home_branch == "HOR"
    assert mette.address_lines == ("Gaden 1", "Horsens")
    assert mette.zip == "8700"
