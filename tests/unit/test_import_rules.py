"""Pure parts of patron import: record validation, the diff, the digest, the deactivation rule."""

from __future__ import annotations

import dataclasses

import pytest

from patronlink.domain.errors import ValidationError
from patronlink.domain.import_records import ImportedRecord, changed_fields, merge, to_patron
from patronlink.domain.import_runs import DeactivationRules, plan_deactivation
from patronlink.domain.patron import PatronStatus

RECORD = ImportedRecord(
    number=1,
    external_id="ext-1",
    patron_id="1001",
    first_name="Karen",
    last_name="Jensen",
    phones=("52 90 39 91", "+45 52903991"),
    sms_number="52903991",
    expiry="2027-06-30T00:00:00.000+0000",
)


def patron(record: ImportedRecord = RECORD):  # type: ignore[no-untyped-def]
    return to_patron(record, agency_id="DK-761500", country_code="45", source_id="ucl")


def test_record_becomes_a_patron() -> None:
    p = patron()
    assert p.name == "Karen Jensen"
    assert p.phones == ("+4552903991",)
    assert p.sms_number == "+4552903991"
    assert str(p.expiry_date) == "2027-06-30"
    assert (p.source, p.external_id, p.status) == ("ucl", "ext-1", PatronStatus.ACTIVE)
    assert patron(dataclasses.replace(RECORD, active=False)).status is PatronStatus.INACTIVE


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"first_name": "", "last_name": " "}, "no name"),
        ({"patron_id": ""}, "no patron id"),
        ({"external_id": ""}, "no external id"),
        ({"expiry": "31/12/2027"}, "not a date"),
        ({"expiry": "2027-02-30"}, "not a date"),
        ({"birth_date": "2001-01-01X"}, "not a date"),
        ({"patron_id": "9" * 65}, "longer than 64"),
    ],
)
def test_invalid_records(change: dict[str, object], reason: str) -> None:
    with pytest.raises(ValidationError, match=reason):
        patron(dataclasses.replace(RECORD, **change))  # type: ignore[arg-type]


def test_changed_fields_and_merge_keep_what_the_feed_lacks() -> None:
    stored = dataclasses.replace(patron(), birth_date=__import__("datetime").date(2001, 1, 1))
    wanted = merge(stored, patron(dataclasses.replace(RECORD, email="k@example.org")))
    assert changed_fields(stored, wanted) == ("email",)
    assert wanted.birth_date == stored.birth_date
    assert changed_fields(stored, merge(stored, patron())) == ()


def test_digest_covers_every_field_but_the_position() -> None:
    base = RECORD.digest()
    assert dataclasses.replace(RECORD, number=99).digest() == base
    for f in dataclasses.fields(ImportedRecord):
        if f.name == "number":
            continue
        value = getattr(RECORD, f.name)
        other = (
            not value
            if isinstance(value, bool)
            else (*value, ("x", "y"))
            if isinstance(value, tuple)
            else frozenset({"email"})
            if isinstance(value, frozenset)
            else "us"
            if f.name == "date_format"
            else value + "x"
        )
        assert dataclasses.replace(RECORD, **{f.name: other}).digest() != base, f.name


RULES = DeactivationRules(enabled=True, max_fraction=0.1, after_missing_runs=1)


@pytest.mark.parametrize(
    ("rules", "records", "failed", "population", "missing", "deactivated", "skipped"),
    [
        (RULES, 19, 0, 20, {1: 0}, (1,), None),
        (RULES, 0, 0, 20, dict.fromkeys(range(20), 0), (), "empty"),
        (RULES, 19, 1, 20, {1: 0}, (), "failed"),
        (RULES, 8, 0, 20, dict.fromkeys(range(12), 0), (), "60%"),
        (RULES, 18, 0, 20, {1: 0, 2: 0}, (1, 2), None),  # exactly 10%: allowed
        (RULES, 17, 0, 20, {1: 0, 2: 0, 3: 0}, (), "15%"),
        (dataclasses.replace(RULES, enabled=False), 19, 0, 20, {1: 0}, (), "off"),
        (dataclasses.replace(RULES, after_missing_runs=3), 19, 0, 20, {1: 1}, (), None),
        (dataclasses.replace(RULES, after_missing_runs=3), 19, 0, 20, {1: 2}, (1,), None),
        (RULES, 20, 0, 20, {}, (), None),
    ],
)
def test_deactivation_rule(
    rules: DeactivationRules,
    records: int,
    failed: int,
    population: int,
    missing: dict[int, int],
    deactivated: tuple[int, ...],
    skipped: str | None,
) -> None:
    plan = plan_deactivation(
        rules, records=records, failed=failed, population=population, missing=missing
    )
    assert plan.deactivate == deactivated
    if skipped is None:
        assert plan.skipped is None
        assert plan.counting == {k: v + 1 for k, v in missing.items()}
    else:
        assert plan.skipped is not None
        assert skipped in plan.skipped
        assert not plan.counting
