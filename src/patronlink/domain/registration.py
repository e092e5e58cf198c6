"""Self-registration: the Aleph New Patron form (``new_bor_register``) and its validation.

The form is the spec's example (``docs/interfaces/new-patron-api.md``): every field in its order,
with its usage, max_len, value list and default. An agency may override any field's settings; the
branch lists (``local-sub-library``, ``home-library``) come from the agency's branches unless the
agency lists them itself.

Validation of a submitted form is a pure function: trim, fill defaults, then check mandatory
fields, lengths, list membership, ``YYYYMMDD`` dates and phone numbers. Every refusal is a
``RegistrationRefused`` carrying a ``Problem`` and the fields concerned; the web layer turns it into
an Aleph reply code.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum

from patronlink.domain import phone
from patronlink.domain.agency import Branch
from patronlink.domain.errors import InvalidPhoneNumber, RegistrationRefused, ValidationError
from patronlink.domain.patron import MAX_NAME, MAX_PATRON_ID, Patron, PatronStatus, new_patron


class Usage(StrEnum):
    MANDATORY = "Mandatory"
    OPTIONAL = "Optional"


class Problem(StrEnum):
    """Why a registration is refused (the web layer maps each to an Aleph reply code)."""

    MISSING = "missing"
    TOO_LONG = "too-long"
    NOT_IN_LIST = "not-in-list"
    BAD_DATE = "bad-date"
    BAD_PHONE = "bad-phone"
    UNKNOWN_FIELD = "unknown-field"


@dataclass(frozen=True, slots=True)
class Choice:
    """One value of a list field; ``label`` None renders as an empty element (``want-sms``)."""

    code: str
    label: str | None = None
    default: bool = False


@dataclass(frozen=True, slots=True)
class FormField:
    name: str
    usage: Usage = Usage.OPTIONAL
    max_len: int | None = None
    choices: tuple[Choice, ...] = ()
    # A text field's default, shown as the element's text by GET (address-valid-from).
    default_text: str | None = None

    @property
    def default(self) -> str | None:
        """What an empty submission of this field becomes."""
        for choice in self.choices:
            if choice.default:
                return choice.code
        return self.default_text


@dataclass(frozen=True, slots=True)
class FieldOverride:
    """An agency's settings for one field; None keeps the spec example's setting."""

    usage: Usage | None = None
    max_len: int | None = None
    choices: tuple[Choice, ...] | None = None
    default_text: str | None = None


@dataclass(frozen=True, slots=True)
class RegistrationForm:
    fields: tuple[FormField, ...]

    def get(self, name: str) -> FormField | None:
        for f in self.fields:
            if f.name == name:
                return f
        return None

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields)


MAN, OPT = Usage.MANDATORY, Usage.OPTIONAL
_LANGUAGES = (Choice("ENG", "English", default=True), Choice("GER", "German"))
_YES_NO = (Choice("Y"), Choice("N"))
_SPEC_BRANCHES = (
    Choice("LAW", "Law Library"),
    Choice("MED", "Medicine Library"),
    Choice("WID", "Main Library"),
)
# The spec's GET example, field by field, in its order. Only the two branch lists depend on the
# agency (see ``build_form``); the example's own lists are kept here for reference and tests.
SPEC_FORM = RegistrationForm(
    (
        FormField("patron-name", MAN, 200),
        FormField("internal-id", OPT, 12),
        FormField("local-sub-library", MAN, 5, _SPEC_BRANCHES),
        FormField("internal-id-verification", OPT, 20),
        FormField("con-lng", MAN, None, _LANGUAGES),
        FormField("address", OPT, 200),
        FormField("address-2", OPT, 200),
        FormField("address-3", OPT, 200),
        FormField("address-4", OPT, 200),
        FormField("zip", OPT, 9),
        FormField("email-address", OPT, 60),
        FormField("telephone-1", MAN, 30),
        FormField("telephone-2", OPT, 30),
        FormField("telephone-3", OPT, 30),
        FormField("telephone-4", OPT, 30),
        FormField("sms-number", OPT, 30),
        FormField("want-sms", OPT, 1, _YES_NO),
        FormField(
            "address-type",
            OPT,
            2,
            (
                Choice("01", "Permanent address", default=True),
                Choice("02", "Mailing address"),
                Choice("03", "Student dorms"),
            ),
        ),
        FormField("address-valid-from", OPT, 8, default_text="20140112"),
        FormField("address-valid-to", OPT, 8, default_text="20140712"),
        FormField("gender", OPT, 1, (Choice("M", "Male"), Choice("F", "Female"))),
        FormField("birthplace", OPT, 30),
        FormField("birth-date", OPT, 8),
        FormField("export-consent", OPT, 1, _YES_NO),
        FormField(
            "mail-attachment",
            OPT,
            1,
            (
                Choice("H", "Attachment Only"),
                Choice("P", "Email Body Only"),
                Choice("B", "Attachment and Email Body"),
            ),
        ),
        FormField(
            "forgot-password-question",
            OPT,
            2,
            tuple(Choice(c, c) for c in ("01", "02", "03", "04")),
        ),
        FormField("forgot-password-answer", OPT, 16),
        FormField("field-1", OPT, 200),
        FormField("field-2", OPT, 200),
        FormField("field-3", OPT, 200),
        FormField("note-1", OPT, 200),
        FormField("note-2", OPT, 200),
        FormField(
            "home-library",
            OPT,
            5,
            (Choice("LAW", "Law Library"), Choice("MED", "MED"), Choice("WID", "Main Library")),
        ),
        FormField("additional-id", OPT, 255),
        FormField("additional-id-verification", OPT, 20),
    )
)
FIELD_NAMES = SPEC_FORM.names
BRANCH_FIELDS = ("local-sub-library", "home-library")
DATE_FIELDS = ("address-valid-from", "address-valid-to", "birth-date")
PHONE_FIELDS = ("telephone-1", "telephone-2", "telephone-3", "telephone-4")
ADDRESS_FIELDS = ("address", "address-2", "address-3", "address-4")
# Secrets: stored only as argon2 hashes (the PIN becomes the patron's pin_hash).
SECRET_FIELDS = ("internal-id-verification", "additional-id-verification", "forgot-password-answer")
# Where a value lands is limited by its column; everything else is kept in ``Patron.extra``.
_STORAGE_LIMITS = {
    "patron-name": MAX_NAME,
    "internal-id": MAX_PATRON_ID,
    "email-address": 254,
    "zip": 16,
    "home-library": 16,
    "local-sub-library": 16,
    "sms-number": 40,
    **dict.fromkeys(PHONE_FIELDS, 40),
}
MAX_EXTRA_LEN = 2000


def storage_limit(name: str) -> int:
    """The largest max_len an agency may configure for a field."""
    return _STORAGE_LIMITS.get(name, MAX_EXTRA_LEN)


def build_form(
    branches: Sequence[Branch] = (), overrides: Mapping[str, FieldOverride] | None = None
) -> RegistrationForm:
    """The agency's form: the spec's, its branch lists from ``branches``, then ``overrides``.

    Raises ``ValidationError`` for an override that makes the form inconsistent (unknown field,
    two defaults, a default or code longer than max_len, a max_len beyond what can be stored).
    """
    overrides = overrides or {}
    unknown = sorted(set(overrides) - set(FIELD_NAMES))
    if unknown:
        raise ValidationError(
            f"unknown registration field {unknown[0]!r}; the fields are those of the Aleph "
            f"form: {', '.join(FIELD_NAMES)}",
            field=unknown[0],
        )
    built = []
    for spec in SPEC_FORM.fields:
        current = spec
        if spec.name in BRANCH_FIELDS and branches:
            codes = tuple(Choice(b.code, b.name) for b in branches)
            # A branch code longer than the spec's 5 characters must still be accepted.
            longest = max(len(b.code) for b in branches)
            current = replace(current, choices=codes, max_len=max(spec.max_len or 0, longest))
        if (o := overrides.get(spec.name)) is not None:
            choices = o.choices if o.choices is not None else current.choices
            kept_text = None if choices else current.default_text
            current = FormField(
                name=spec.name,
                usage=o.usage or current.usage,
                max_len=o.max_len if o.max_len is not None else current.max_len,
                choices=choices,
                default_text=o.default_text if o.default_text is not None else kept_text,
            )
        _check_field(current)
        built.append(current)
    return RegistrationForm(tuple(built))


def _check_field(f: FormField) -> None:
    if f.name == "patron-name" and f.usage is not Usage.MANDATORY:
        # Every patron has a name; the form cannot make it optional.
        raise ValidationError("patron-name: usage must stay Mandatory", field=f.name)
    limit = storage_limit(f.name)
    if f.max_len is not None and f.max_len > limit:
        raise ValidationError(f"{f.name}: max_len is at most {limit}", field=f.name)
    if sum(c.default for c in f.choices) > 1:
        raise ValidationError(f"{f.name}: more than one value is the default", field=f.name)
    codes = [c.code for c in f.choices]
    if len(codes) != len(set(codes)):
        raise ValidationError(f"{f.name}: value codes must be unique", field=f.name)
    if f.choices and f.default_text is not None:
        raise ValidationError(
            f"{f.name}: a list field's default is the value marked default = true", field=f.name
        )
    for text in [*codes, f.default_text or ""]:
        if f.max_len is not None and len(text) > f.max_len:
            raise ValidationError(
                f"{f.name}: {text!r} is longer than max_len {f.max_len}", field=f.name
            )
    if f.name in DATE_FIELDS and f.default_text and parse_date(f.default_text) is None:
        raise ValidationError(f"{f.name}: default {f.default_text!r} is not YYYYMMDD", field=f.name)


def parse_date(text: str) -> dt.date | None:
    """A ``YYYYMMDD`` date, or None when ``text`` is not one."""
    if len(text) != 8 or not text.isascii() or not text.isdigit():
        return None
    try:
        return dt.date(int(text[:4]), int(text[4:6]), int(text[6:]))
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class Submission:
    """A validated registration: every field's clean value, phones in E.164 where valid."""

    values: dict[str, str]
    phones: tuple[str, ...] = ()
    sms_number: str | None = None
    # Telephones that are no valid number of the agency's country, kept as written.
    unparsed_phones: dict[str, str] = field(default_factory=dict)

    @property
    def internal_id(self) -> str:
        return self.values.get("internal-id", "")

    def secrets(self) -> dict[str, str]:
        return {k: v for k, v in self.values.items() if k in SECRET_FIELDS and v}


def validate(form: RegistrationForm, raw: Mapping[str, str], country_code: str) -> Submission:
    """Check a submitted form; returns the clean values or raises ``RegistrationRefused``.

    Values are trimmed; an empty or absent field takes its default. The first failing class of
    check is reported, naming every field that fails it (all missing fields at once).
    """
    unknown = [name for name in raw if form.get(name) is None]
    if unknown:
        raise RegistrationRefused(
            Problem.UNKNOWN_FIELD, f"Unknown field: {', '.join(unknown)}", unknown
        )
    values: dict[str, str] = {}
    for f in form.fields:
        value = raw.get(f.name, "").strip()
        if not value and f.default:
            value = f.default
        if value:
            values[f.name] = value
    missing = [f.name for f in form.fields if f.usage is Usage.MANDATORY and f.name not in values]
    if missing:
        raise RegistrationRefused(
            Problem.MISSING, f"Mandatory parameters are missing: {', '.join(missing)}", missing
        )
    too_long = [
        f for f in form.fields if f.max_len is not None and len(values.get(f.name, "")) > f.max_len
    ]
    if too_long:
        detail = ", ".join(f"{f.name} (at most {f.max_len} characters)" for f in too_long)
        raise RegistrationRefused(
            Problem.TOO_LONG, f"Value too long: {detail}", [f.name for f in too_long]
        )
    # Fields whose column is shorter than any configured max_len could allow.
    over_storage = [n for n, v in values.items() if len(v) > storage_limit(n)]
    if over_storage:
        detail = ", ".join(f"{n} (at most {storage_limit(n)} characters)" for n in over_storage)
        raise RegistrationRefused(Problem.TOO_LONG, f"Value too long: {detail}", over_storage)
    not_listed = [
        f
        for f in form.fields
        if f.choices and f.name in values and values[f.name] not in {c.code for c in f.choices}
    ]
    if not_listed:
        detail = ", ".join(
            f"{f.name} (one of {', '.join(c.code for c in f.choices)})" for f in not_listed
        )
        raise RegistrationRefused(
            Problem.NOT_IN_LIST, f"Value not in list: {detail}", [f.name for f in not_listed]
        )
    bad_dates = [n for n in DATE_FIELDS if n in values and parse_date(values[n]) is None]
    if bad_dates:
        raise RegistrationRefused(
            Problem.BAD_DATE,
            f"Invalid date, YYYYMMDD expected: {', '.join(bad_dates)}",
            bad_dates,
        )
    return _with_phones(values, country_code)


def _with_phones(values: dict[str, str], country_code: str) -> Submission:
    phones: list[str] = []
    unparsed: dict[str, str] = {}
    for name in PHONE_FIELDS:
        if name not in values:
            continue
        try:
            number = phone.normalise(values[name], country_code, field=name)
        except InvalidPhoneNumber:
            # Aleph keeps telephones as free text and front ends send them so (the spec's own
            # example, 111222999, is no valid number anywhere): keep it, but not as a number to
            # text or to recognise an SMS sender by.
            unparsed[name] = values[name]
            continue
        if number not in phones:
            phones.append(number)
    sms = None
    if "sms-number" in values:
        try:
            sms = phone.normalise(values["sms-number"], country_code, field="sms-number")
        except InvalidPhoneNumber as exc:
            # The SMS number exists to be texted; one that cannot be is refused.
            raise RegistrationRefused(
                Problem.BAD_PHONE,
                f"Invalid phone number: sms-number {values['sms-number']!r}",
                ["sms-number"],
            ) from exc
    return Submission(values, tuple(phones), sms, unparsed)


# Fields with a home of their own in ``Patron``; every other value goes to ``Patron.extra``.
_MAPPED = {
    "patron-name",
    "internal-id",
    "email-address",
    "zip",
    "want-sms",
    "birth-date",
    "home-library",
    "sms-number",
    *ADDRESS_FIELDS,
    *PHONE_FIELDS,
    *SECRET_FIELDS,
}


def to_patron(
    submission: Submission,
    *,
    agency_id: str,
    country_code: str,
    patron_id: str,
    status: PatronStatus,
    secret_hashes: Mapping[str, str] | None = None,
) -> Patron:
    """The patron to store. ``secret_hashes``: hashes of the secret fields other than the PIN."""
    values = submission.values
    lines = [values.get(n, "") for n in ADDRESS_FIELDS]
    while lines and not lines[-1]:
        lines.pop()
    extra = {k: v for k, v in values.items() if k not in _MAPPED}
    extra.update(submission.unparsed_phones)
    for name, hashed in (secret_hashes or {}).items():
        extra[f"{name}-hash"] = hashed
    birth = values.get("birth-date")
    return new_patron(
        agency_id=agency_id,
        country_code=country_code,
        patron_id=patron_id,
        name=values["patron-name"],
        phones=submission.phones,
        sms_number=submission.sms_number,
        status=status,
        email=values.get("email-address"),
        want_sms=values.get("want-sms") == "Y",
        address_lines=tuple(lines),
        zip=values.get("zip"),
        birth_date=parse_date(birth) if birth else None,
        home_branch=values.get("home-library"),
        extra=extra,
    )
