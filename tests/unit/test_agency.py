"""Agency identifiers (ISIL), time zones and country calling codes."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import pytest

from patronlink.domain.agency import (
    Agency,
    is_bare_number,
    isil_number,
    validate_country_code,
    validate_isil,
    validate_timezone,
)
from patronlink.domain.errors import ValidationError


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("DK-761500", "DK-761500"),
        ("dk-761500", "DK-761500"),
        ("Dk-761500", "DK-761500"),
        ("  DK-761500\n", "DK-761500"),
        ("US-DLC", "US-DLC"),
        ("DE-Tue120", "DE-Tue120"),
        ("GB-UkOxU:a/b", "GB-UkOxU:a/b"),
        ("DK-12345678901", "DK-12345678901"),
        ("ABCD-1", "ABCD-1"),
    ],
)
def test_validate_isil_accepts(raw: str, expected: str) -> None:
    assert validate_isil(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "761500",
        "DK-",
        "-761500",
        "DK761500",
        "DK 761500",
        "DK-761 500",
        "DK-123456789012",
        "ABCDE-1",
        "D1-761500",
        "DK-7615#0",
    ],
)
def test_validate_isil_rejects(raw: str) -> None:
    with pytest.raises(ValidationError) as info:
        validate_isil(raw)
    assert info.value.field == "id"


def test_validate_isil_rejects_non_ascii_prefix() -> None:
    with pytest.raises(ValidationError):
        validate_isil("ß-761500")


@pytest.mark.parametrize(
    ("isil", "number"),
    [("DK-761500", "761500"), ("US-DLC", "DLC"), ("DE-Tue-120", "Tue-120")],
)
def test_isil_number(isil: str, number: str) -> None:
    assert isil_number(isil) == number


def test_agency_number_and_zone() -> None:
    agency = Agency(id="DK-761500", name="Herning Bibliotekerne")
    assert agency.number == "761500"
    assert agency.zone == ZoneInfo("Europe/Copenhagen")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("761500", True),
        ("Tue120", True),
        ("12345678901", True),
        ("DK-761500", False),
        ("", False),
        ("761 500", False),
        ("123456789012", False),
    ],
)
def test_is_bare_number(value: str, *, expected: bool) -> None:
    assert is_bare_number(value) is expected


def test_is_bare_number_rejects_trailing_newline() -> None:
    assert is_bare_number("761500\n") is False


@pytest.mark.parametrize("name", ["Europe/Copenhagen", "UTC", "America/Nuuk", "Atlantic/Faroe"])
def test_validate_timezone_accepts(name: str) -> None:
    assert validate_timezone(name) == name


@pytest.mark.parametrize("name", ["", "Mars/Olympus_Mons", "CET/Nowhere", "../etc/passwd"])
def test_validate_timezone_rejects(name: str) -> None:
    with pytest.raises(ValidationError) as info:
        validate_timezone(name)
    assert info.value.field == "timezone"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("45", "45"), ("+45", "45"), (" 47 ", "47"), ("1", "1"), ("299", "299")],
)
def test_validate_country_code_accepts(raw: str, expected: str) -> None:
    assert validate_country_code(raw) == expected


@pytest.mark.parametrize("raw", ["", "+", "4a", "1234", "+ 45", "-45", "4 5"])
def test_validate_country_code_rejects(raw: str) -> None:
    with pytest.raises(ValidationError) as info:
        validate_country_code(raw)
    assert info.value.field == "country_code"


@pytest.mark.parametrize("raw", ["²", "٤٥"])
def test_validate_country_code_rejects_non_ascii_digits(raw: str) -> None:
    with pytest.raises(ValidationError):
        validate_country_code(raw)
