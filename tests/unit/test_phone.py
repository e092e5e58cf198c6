"""Phone numbers: every inbound shape means the same E.164 number."""

from __future__ import annotations

import phonenumbers
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from patronlink.domain.errors import InvalidPhoneNumber
from patronlink.domain.phone import national_digits, normalise, region_for_country_code

DK = "45"
NO = "47"


@pytest.mark.parametrize(
    "raw",
    [
        "52903991",
        "52 90 39 91",
        "4552903991",
        "+4552903991",
        "004552903991",
        " +45 52 90 39 91 ",
    ],
)
def test_danish_shapes_normalise_to_e164(raw: str) -> None:
    assert normalise(raw, DK) == "+4552903991"


@pytest.mark.parametrize("raw", ["41234567", "+4741234567", "004741234567", "41 23 45 67"])
def test_norwegian_number_with_country_47(raw: str) -> None:
    assert normalise(raw, NO) == "+4741234567"


def test_foreign_number_keeps_its_own_country() -> None:
    assert normalise("+4741234567", DK) == "+4741234567"


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "   ",
        "abcdefgh",
        "5290399",
        "1" * 41,
        "+99912345",
    ],
    ids=["empty", "blank", "letters", "too-short", "41-chars", "unknown-country"],
)
def test_invalid_numbers_raise_with_the_field_name(raw: str) -> None:
    with pytest.raises(InvalidPhoneNumber) as info:
        normalise(raw, DK, field="sms_number")
    assert info.value.field == "sms_number"


def test_field_defaults_to_phone() -> None:
    with pytest.raises(InvalidPhoneNumber) as info:
        normalise("abc", DK)
    assert info.value.field == "phone"


def test_unknown_country_code() -> None:
    with pytest.raises(InvalidPhoneNumber):
        region_for_country_code("999")


def test_region_for_country_code() -> None:
    assert region_for_country_code(DK) == "DK"


@pytest.mark.parametrize(
    ("e164", "country_code", "expected"),
    [
        ("+4552903991", DK, "52903991"),
        ("+4712345678", DK, "4712345678"),
        ("+4741234567", NO, "41234567"),
    ],
)
def test_national_digits(e164: str, country_code: str, expected: str) -> None:
    assert national_digits(e164, country_code) == expected


_DK_MOBILE_TYPES = {
    phonenumbers.PhoneNumberType.MOBILE,
    phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE,
}


@given(national=st.from_regex(r"[2-9][0-9]{7}", fullmatch=True))
def test_every_shape_of_a_danish_mobile_number_is_the_same(national: str) -> None:
    parsed = phonenumbers.parse("+45" + national, None)
    assume(phonenumbers.is_valid_number(parsed))
    assume(phonenumbers.number_type(parsed) in _DK_MOBILE_TYPES)
    e164 = "+45" + national

    assert normalise(e164, DK) == e164
    assert normalise(national, DK) == e164
    assert normalise("00" + e164[1:], DK) == e164
    assert normalise(e164[1:], DK) == e164
    assert national_digits(e164, DK) == national


@given(raw=st.text())
def test_normalise_raises_only_invalid_phone_number(raw: str) -> None:
    try:
        result = normalise(raw, DK)
    except InvalidPhoneNumber:
        return
    assert result.startswith("+")
    assert result[1:].isdigit()
