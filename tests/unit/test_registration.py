"""The Aleph New Patron form and the validation of a submitted form (pure, no I/O)."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from patronlink.domain.agency import Branch
from patronlink.domain.errors import RegistrationRefused, ValidationError
from patronlink.domain.patron import PatronStatus
from patronlink.domain.registration import (
    FIELD_NAMES,
    SPEC_FORM,
    Choice,
    FieldOverride,
    Problem,
    Usage,
    build_form,
    parse_date,
    to_patron,
    validate,
)

FULLWIDTH_DATE = "\uff11\uff19\uff19\uff19\uff10\uff11\uff10\uff11"  # str.isdigit() says yes
VALID = {"patron-name": "Karen Jensen", "local-sub-library": "LAW", "telephone-1": "52903991"}


def refused(raw: dict[str, str], form: object = SPEC_FORM) -> RegistrationRefused:
    with pytest.raises(RegistrationRefused) as info:
        validate(form, raw, "45")  # type: ignore[arg-type]
    return info.value


def test_spec_form_has_the_spec_fields_in_order() -> None:
    assert FIELD_NAMES[:5] == (
        "patron-name",
        "internal-id",
        "local-sub-library",
        "internal-id-verification",
        "con-lng",
    )
    assert FIELD_NAMES[-3:] == ("home-library", "additional-id", "additional-id-verification")
    assert len(FIELD_NAMES) == 35
    mandatory = [f.name for f in SPEC_FORM.fields if f.usage is Usage.MANDATORY]
    assert mandatory == ["patron-name", "local-sub-library", "con-lng", "telephone-1"]


def test_branch_lists_come_from_the_agency() -> None:
    form = build_form((Branch("HOR", "Hovedbiblioteket"), Branch("BRAEDSTRUP", "Brædstrup")))
    for name in ("local-sub-library", "home-library"):
        field = form.get(name)
        assert field is not None
        assert [c.code for c in field.choices] == ["HOR", "BRAEDSTRUP"]
        # A branch code longer than the spec's max_len 5 still fits.
        assert field.max_len == 10


def test_without_branches_the_spec_lists_stay() -> None:
    assert build_form(()) == SPEC_FORM


def test_overrides_replace_only_what_they_name() -> None:
    form = build_form(
        (),
        {
            "con-lng": FieldOverride(choices=(Choice("DAN", "Dansk", default=True),)),
            "gender": FieldOverride(usage=Usage.MANDATORY),
            "address-valid-from": FieldOverride(default_text="20260101"),
        },
    )
    con_lng = form.get("con-lng")
    assert con_lng is not None
    assert con_lng.default == "DAN"
    gender = form.get("gender")
    assert gender is not None
    assert gender.usage is Usage.MANDATORY
    assert gender.max_len == 1
    assert [c.code for c in gender.choices] == ["M", "F"]
    from_field = form.get("address-valid-from")
    assert from_field is not None
    assert from_field.default == "20260101"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"colour": FieldOverride()}, "unknown registration field 'colour'"),
        ({"patron-name": FieldOverride(usage=Usage.OPTIONAL)}, "must stay Mandatory"),
        ({"patron-name": FieldOverride(max_len=500)}, "max_len is at most 200"),
        (
            {
                "gender": FieldOverride(
                    choices=(Choice("M", "Male", True), Choice("F", "Female", True))
                )
            },
            "more than one value is the default",
        ),
        ({"gender": FieldOverride(choices=(Choice("MALE"),))}, "longer than max_len 1"),
        ({"gender": FieldOverride(default_text="M")}, "a list field's default"),
        ({"birth-date": FieldOverride(default_text="2020-01-01")}, "longer than max_len 8"),
        ({"birth-date": FieldOverride(default_text="20201301")}, "is not YYYYMMDD"),
        ({"want-sms": FieldOverride(choices=(Choice("Y"), Choice("Y")))}, "unique"),
    ],
)
def test_inconsistent_overrides_are_refused(
    overrides: dict[str, FieldOverride], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        build_form((), overrides)


def test_values_are_trimmed_and_defaults_applied() -> None:
    submission = validate(
        SPEC_FORM, {**VALID, "home-library": "LAW ", "patron-name": "  Karen  "}, "45"
    )
    assert submission.values["home-library"] == "LAW"
    assert submission.values["patron-name"] == "Karen"
    assert submission.values["con-lng"] == "ENG"  # list default
    assert submission.values["address-type"] == "01"
    assert submission.values["address-valid-from"] == "20140112"  # text default
    assert "gender" not in submission.values


def test_missing_mandatory_fields_are_all_named() -> None:
    error = refused({"local-sub-library": "LAW", "con-lng": " "})
    assert error.problem == Problem.MISSING
    assert str(error) == "Mandatory parameters are missing: patron-name, telephone-1"
    assert error.fields == ("patron-name", "telephone-1")


@pytest.mark.parametrize(
    ("change", "problem", "fields"),
    [
        ({"zip": "1234567890"}, Problem.TOO_LONG, ("zip",)),
        ({"patron-name": "x" * 201, "zip": "9" * 10}, Problem.TOO_LONG, ("patron-name", "zip")),
        ({"gender": "X"}, Problem.NOT_IN_LIST, ("gender",)),
        ({"local-sub-library": "law"}, Problem.NOT_IN_LIST, ("local-sub-library",)),
        ({"birth-date": "19991332"}, Problem.BAD_DATE, ("birth-date",)),
        ({"address-valid-to": "2016071"}, Problem.BAD_DATE, ("address-valid-to",)),
        (
            {"birth-date": "\uff11\uff19\uff19\uff19\uff10\uff11\uff10\uff11"},
            Problem.BAD_DATE,
            ("birth-date",),
        ),
        ({"sms-number": "12"}, Problem.BAD_PHONE, ("sms-number",)),
        ({"colour": "blue"}, Problem.UNKNOWN_FIELD, ("colour",)),
    ],
)
def test_each_rule_refuses_with_its_problem(
    change: dict[str, str], problem: Problem, fields: tuple[str, ...]
) -> None:
    error = refused({**VALID, **change})
    assert error.problem == problem
    assert error.fields == fields
    for name in fields:
        assert name in str(error)


def test_phones_are_normalised_and_unparsable_ones_kept() -> None:
    submission = validate(
        SPEC_FORM,
        {
            **VALID,
            "telephone-1": "111222999",
            "telephone-2": "52 90 39 91",
            "telephone-3": "+4552903991",
            "sms-number": "0045 20 11 22 33",
        },
        "45",
    )
    assert submission.phones == ("+4552903991",)
    assert submission.sms_number == "+4520112233"
    assert submission.unparsed_phones == {"telephone-1": "111222999"}


def test_to_patron_maps_every_field() -> None:
    raw = {
        **VALID,
        "internal-id": "0044",
        "internal-id-verification": "1234",
        "email-address": "a@example.org",
        "address": "Street 1",
        "address-2": "",
        "address-3": "Town",
        "zip": "8700",
        "want-sms": "Y",
        "birth-date": "19991231",
        "home-library": "MED",
        "gender": "F",
        "note-1": "hello",
        "additional-id": "A-1",
    }
    submission = validate(SPEC_FORM, raw, "45")
    assert submission.secrets() == {"internal-id-verification": "1234"}
    patron = to_patron(
        submission,
        agency_id="DK-761500",
        country_code="45",
        patron_id=submission.internal_id,
        status=PatronStatus.PENDING,
        secret_hashes={"forgot-password-answer": "$argon2id$x"},
    )
    assert patron.patron_id == "0044"
    assert patron.name == "Karen Jensen"
    assert patron.status is PatronStatus.PENDING
    assert patron.email == "a@example.org"
    assert patron.address_lines == ("Street 1", "", "Town")
    assert patron.zip == "8700"
    assert patron.want_sms is True
    assert patron.birth_date == dt.date(1999, 12, 31)
    assert patron.home_branch == "MED"
    assert patron.phones == ("+4552903991",)
    assert patron.extra == {
        "local-sub-library": "LAW",
        "con-lng": "ENG",
        "address-type": "01",
        "address-valid-from": "20140112",
        "address-valid-to": "20140712",
        "gender": "F",
        "note-1": "hello",
        "additional-id": "A-1",
        "forgot-password-answer-hash": "$argon2id$x",
    }
    assert "1234" not in repr(patron)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("20150101", dt.date(2015, 1, 1)),
        ("20240229", dt.date(2024, 2, 29)),
        ("20230229", None),
        ("2015010", None),
        ("2015-01-01", None),
        ("", None),
    ],
)
def test_parse_date(text: str, expected: dt.date | None) -> None:
    assert parse_date(text) == expected


@given(
    st.dictionaries(
        st.sampled_from([*FIELD_NAMES, "unknown"]),
        st.text(max_size=40),
        max_size=12,
    )
)
def test_any_submission_is_accepted_or_refused_with_a_problem(raw: dict[str, str]) -> None:
    try:
        submission = validate(SPEC_FORM, raw, "45")
    except RegistrationRefused as exc:
        problem = exc.problem
        assert problem in set(Problem)
        return
    patron = to_patron(
        submission,
        agency_id="DK-761500",
        country_code="45",
        patron_id="1",
        status=PatronStatus.ACTIVE,
    )
    assert patron.name == raw["patron-name"].strip()
