"""Building patrons from raw input, and what a patron knows about itself."""

from __future__ import annotations

import datetime as dt

import pytest

from patronlink.domain.errors import InvalidPhoneNumber, ValidationError
from patronlink.domain.patron import (
    MAX_NAME,
    MAX_PATRON_ID,
    Patron,
    PatronStatus,
    new_patron,
)

AGENCY = "DK-761500"
TODAY = dt.date(2026, 11, 23)


def build(**overrides: object) -> Patron:
    fields: dict[str, object] = {
        "agency_id": AGENCY,
        "country_code": "45",
        "patron_id": "0101801234",
        "name": "Karen Blixen",
    }
    fields.update(overrides)
    return new_patron(**fields)  # type: ignore[arg-type]


def test_new_patron_trims_id_and_name() -> None:
    patron = build(patron_id="  0101801234\t", name="  Karen Blixen \n")
    assert patron.patron_id == "0101801234"
    assert patron.name == "Karen Blixen"
    assert patron.agency_id == AGENCY
    assert patron.status is PatronStatus.ACTIVE


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"patron_id": ""}, "patron_id"),
        ({"patron_id": "   "}, "patron_id"),
        ({"patron_id": "x" * (MAX_PATRON_ID + 1)}, "patron_id"),
        ({"name": ""}, "name"),
        ({"name": " \t "}, "name"),
        ({"name": "x" * (MAX_NAME + 1)}, "name"),
    ],
    ids=["id-empty", "id-blank", "id-too-long", "name-empty", "name-blank", "name-too-long"],
)
def test_new_patron_rejects(overrides: dict[str, str], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        build(**overrides)
    assert info.value.field == field


def test_new_patron_accepts_the_longest_id_and_name() -> None:
    patron = build(patron_id="x" * MAX_PATRON_ID, name=f" {'y' * MAX_NAME} ")
    assert len(patron.patron_id) == MAX_PATRON_ID
    assert len(patron.name) == MAX_NAME


def test_new_patron_normalises_and_deduplicates_phones() -> None:
    patron = build(
        phones=["52903991", "+45 52 90 39 91", "  ", "004520304050", "4552903991", "20304050"]
    )
    assert patron.phones == ("+4552903991", "+4520304050")


def test_new_patron_accepts_a_tuple_of_phones() -> None:
    assert build(phones=("52903991",)).phones == ("+4552903991",)


def test_new_patron_names_the_bad_phone() -> None:
    with pytest.raises(InvalidPhoneNumber) as info:
        build(phones=["52903991", "not a number"])
    assert info.value.field == "phones[1]"


def test_new_patron_normalises_sms_number() -> None:
    patron = build(sms_number=" 52 90 39 91 ")
    assert patron.sms_number == "+4552903991"


@pytest.mark.parametrize("sms_number", [None, "", "   "])
def test_new_patron_without_sms_number(sms_number: str | None) -> None:
    assert build(sms_number=sms_number).sms_number is None


def test_new_patron_rejects_bad_sms_number() -> None:
    with pytest.raises(InvalidPhoneNumber) as info:
        build(sms_number="1234")
    assert info.value.field == "sms_number"


def test_new_patron_passes_other_fields_through() -> None:
    patron = build(
        status=PatronStatus.BLOCKED, email="karen@example.org", expiry_date=TODAY, want_sms=True
    )
    assert patron.status is PatronStatus.BLOCKED
    assert patron.email == "karen@example.org"
    assert patron.expiry_date == TODAY
    assert patron.want_sms is True


def test_new_patron_reads_numbers_in_the_agency_country() -> None:
    assert build(country_code="47", phones=["41234567"]).phones == ("+4741234567",)


@pytest.mark.parametrize(
    ("phones", "sms_number", "expected"),
    [
        ((), None, frozenset()),
        (("+4552903991",), None, {"+4552903991"}),
        ((), "+4552903991", {"+4552903991"}),
        (("+4552903991", "+4520304050"), "+4552903991", {"+4552903991", "+4520304050"}),
        (("+4552903991",), "+4741234567", {"+4552903991", "+4741234567"}),
    ],
)
def test_numbers(phones: tuple[str, ...], sms_number: str | None, expected: set[str]) -> None:
    patron = Patron(
        agency_id=AGENCY, patron_id="P1", name="N", phones=phones, sms_number=sms_number
    )
    assert patron.numbers() == frozenset(expected)


@pytest.mark.parametrize(
    ("status", "expiry_date", "expired"),
    [
        (PatronStatus.ACTIVE, None, False),
        (PatronStatus.ACTIVE, TODAY + dt.timedelta(days=1), False),
        (PatronStatus.ACTIVE, TODAY, False),
        (PatronStatus.ACTIVE, TODAY - dt.timedelta(days=1), True),
        (PatronStatus.EXPIRED, None, True),
        (PatronStatus.EXPIRED, TODAY + dt.timedelta(days=365), True),
        (PatronStatus.BLOCKED, TODAY - dt.timedelta(days=1), True),
        (PatronStatus.BLOCKED, None, False),
    ],
)
def test_is_expired(status: PatronStatus, expiry_date: dt.date | None, *, expired: bool) -> None:
    patron = Patron(
        agency_id=AGENCY, patron_id="P1", name="N", status=status, expiry_date=expiry_date
    )
    assert patron.is_expired(TODAY) is expired
