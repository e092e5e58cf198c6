"""Imported patron records: what a feed says about one person, and how it becomes a patron.

A format reader (FOLIO JSON, Koha CSV) turns each entry of a feed into an ``ImportedRecord`` of raw
text, or into a ``RecordError`` when the entry cannot even be read. ``validate`` checks a record
against the domain rules (name, patron id, phone numbers, dates) and gives every fault it finds,
each with a reason a librarian can act on: an error keeps the patron out of the import, a warning
(a phone number that does not validate) lets it in with that part set aside. ``changed_fields`` is
the diff that decides whether a stored patron needs a write at all.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import marshal
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, NamedTuple

from patronlink.domain import import_dates, phone
from patronlink.domain.errors import ValidationError
from patronlink.domain.patron import MAX_NAME, MAX_PATRON_ID, Patron, PatronStatus

MAX_EXTERNAL_ID = 128
MAX_EMAIL = 254
# A phone number kept as written is cut at this length (a feed may put anything in the field).
MAX_UNPARSED = 64

# The patron fields an import owns. Anything else (birth date when the feed has none, PIN, staff
# notes) is left as staff set it.
IMPORTED_FIELDS = (
    "patron_id",
    "name",
    "status",
    "expiry_date",
    "email",
    "phones",
    "sms_number",
    "want_sms",
    "address_lines",
    "zip",
    "birth_date",
    "home_branch",
    "source",
    "external_id",
    "extra",
    "phones_unparsed",
)


# Not frozen, like ``PendingRecord``: one is made for every entry read, and a frozen dataclass
# sets each of these sixteen fields through object.__setattr__ (1.7 µs rather than 0.4 µs).
# Nothing changes a record once it is made.
@dataclass(slots=True)
class ImportedRecord:
    """One entry of a feed as raw text; ``number`` is its 1-based position in the feed."""

    number: int
    external_id: str
    patron_id: str
    first_name: str = ""
    last_name: str = ""
    email: str = ""
    phones: tuple[str, ...] = ()
    sms_number: str = ""
    want_sms: bool = False
    active: bool = True
    expiry: str = ""
    birth_date: str = ""
    home_branch: str = ""
    address_lines: tuple[str, ...] = ()
    zip: str = ""
    extra: tuple[tuple[str, str], ...] = ()
    # How ``expiry`` and ``birth_date`` are written (see ``import_dates``).
    date_format: import_dates.DateFormat = "iso"
    # Patron fields the entry does not carry at all, to be kept as stored (FOLIO's
    # ``updateOnlyPresentFields``); empty when the feed asks for every field to be written.
    absent: frozenset[str] = frozenset()

    def digest(self) -> str:
        """A fingerprint of everything the record says (its position excluded).

        Two runs that see the same digest for a patron need not look any further: the feed says
        what it said when the patron was last written.
        """
        values: tuple[object, ...] = (
            self.external_id, self.patron_id, self.first_name, self.last_name, self.email,
            self.phones, self.sms_number, self.want_sms, self.active, self.expiry,
            self.birth_date, self.home_branch, self.address_lines, self.zip, self.extra,
        )  # fmt: skip
        # Only when they say something: the digests of every other record stay as they were.
        if self.date_format != "iso" or self.absent:
            values = (*values, self.date_format, tuple(sorted(self.absent)))
        return hashlib.blake2b(repr(values).encode(), digest_size=16).hexdigest()


class Severity(StrEnum):
    ERROR = "error"  # the patron was not written
    WARNING = "warning"  # the patron was written; something in the record was set aside


@dataclass(frozen=True, slots=True)
class RecordError:
    """A finding about one record of a feed; ``number`` is its position in the feed.

    An ``error`` (the default) means the record was not imported; a ``warning`` that it was, and
    what was set aside. ``field`` names the part of the record, when one is to blame.
    """

    number: int
    reason: str
    external_id: str | None = None
    field: str | None = None
    severity: Severity = Severity.ERROR


# Every finding of a run, errors and warnings alike, is a ``RecordError``.
Finding = RecordError


@dataclass(frozen=True, slots=True)
class Fault:
    """One thing wrong with a record, before it is known where in the feed it stands."""

    field: str | None
    reason: str
    severity: Severity = Severity.ERROR

    def at(self, number: int, external_id: str | None) -> RecordError:
        return RecordError(number, self.reason, external_id, self.field, self.severity)


def fingerprint(kind: str, raw: object) -> str:
    """A digest of an entry of a feed as the reader got it (the parsed JSON value).

    Everything a record is read from is in ``raw``, so an equal fingerprint means an equal
    record; a difference the record does not see (key order, an ignored field) only costs a
    comparison field by field. ``kind`` keeps the digests of different readings apart.

    The value is serialised by ``marshal`` in its version 2 format: a fixed, documented byte
    layout of the value alone (no references between objects, unlike versions 3 and 4, so two
    equal values give equal bytes), three times faster than ``repr``. Values marshal cannot
    write (JSON numbers with a fraction, read as ``Decimal``) fall back to ``repr``.
    """
    try:
        body = marshal.dumps(raw, 2)  # type: ignore[arg-type]  # ValueError when it is not
    except ValueError:
        body = b"repr:" + repr(raw).encode()
    return hashlib.blake2b(body, digest_size=16, person=kind.encode()[:16]).hexdigest()


@dataclass(frozen=True, slots=True)
class Checked:
    """A record read and validated: the patron it describes, or why it cannot be one.

    ``external_id`` is the record's; ``faults`` are everything found, and hold an error exactly
    when ``patron`` is None. ``keep`` are the patron fields to keep as stored (the entry does
    not carry them).
    """

    external_id: str
    patron: Patron | None
    faults: tuple[Fault, ...] = ()
    keep: frozenset[str] = frozenset()

    def findings(self, number: int) -> list[RecordError]:
        return [fault.at(number, self.external_id) for fault in self.faults]


def check(record: ImportedRecord, *, agency_id: str, country_code: str, source_id: str) -> Checked:
    """``validate``, and the patron when the record has no error."""
    fields, faults = validate(record, country_code=country_code)
    if fields is None:
        return Checked(record.external_id, None, faults, record.absent)
    patron = fields.patron(agency_id=agency_id, source_id=source_id, external_id=record.external_id)
    return Checked(record.external_id, patron, faults, record.absent)


# Not frozen: one is built for every entry of a feed, and a frozen dataclass sets each field
# through object.__setattr__ (several times slower).
@dataclass(slots=True)
class PendingRecord:
    """An entry of a feed known by its external id and fingerprint, not yet read into a record.

    Most entries of a scheduled run are unchanged: their fingerprint equals the digest stored
    when the patron was last written, and they are never read further (no record, no
    validation, no phone numbers). ``read`` gives the record (or the reason there is none) for
    the others; its external id is ``external_id``.
    """

    number: int
    external_id: str
    fingerprint: str
    raw: Any
    reader: Callable[[int, Any], ImportedRecord | RecordError]
    # The entry read and validated, once someone has (ahead of need, or in another process).
    checked: Checked | RecordError | None = None

    def read(self) -> ImportedRecord | RecordError:
        return self.reader(self.number, self.raw)


def _itself(number: int, record: Any) -> ImportedRecord | RecordError:
    assert isinstance(record, ImportedRecord)
    return record


def pending(record: ImportedRecord) -> PendingRecord:
    """A record that is read already, as an entry like the others (its digest as fingerprint)."""
    return PendingRecord(record.number, record.external_id, record.digest(), record, _itself)


FeedItem = ImportedRecord | RecordError | PendingRecord


def parse_date(text: str, what: str, fmt: import_dates.DateFormat = "iso") -> dt.date | None:
    """A date in ``fmt``; for ``iso`` also the date part of an ISO timestamp (FOLIO sends
    ``2027-06-30T00:00:00Z``)."""
    text = text.strip()
    if not text:
        return None
    # Most records of a feed share a few expiry dates: each distinct text is parsed once.
    found = _DATES.get((text, fmt))
    if found is not None:
        return found
    day = import_dates.read(text, fmt)
    if day is None:
        pattern = import_dates.PATTERNS[fmt]
        raise ValidationError(f"{what} {text!r} is not a date ({pattern})", field=what)
    if len(_DATES) >= 4096:
        _DATES.clear()
    _DATES[(text, fmt)] = day
    return day


_DATES: dict[tuple[str, str], dt.date] = {}


def to_patron(
    record: ImportedRecord, *, agency_id: str, country_code: str, source_id: str
) -> Patron:
    """The patron a record describes; ``ValidationError`` gives the first error when it cannot
    be one (``check`` gives them all, and the warnings)."""
    checked = check(record, agency_id=agency_id, country_code=country_code, source_id=source_id)
    if checked.patron is None:
        first = next(f for f in checked.faults if f.severity is Severity.ERROR)
        raise ValidationError(first.reason, field=first.field)
    return checked.patron


class PatronFields(NamedTuple):
    """The patron ``validate`` reads from a record, without the agency, the source and the
    external id (``patron`` adds them). Built and read by name: nothing depends on the order of
    ``Patron``'s fields. A named tuple rather than a dataclass: one is made for every record
    validated, and the reader process sends its plain tuple to the importing process (a tuple
    pickles in C), which makes it a ``PatronFields`` again."""

    patron_id: str
    name: str
    status: PatronStatus
    expiry_date: dt.date | None
    email: str | None
    phones: tuple[str, ...]
    sms_number: str | None
    want_sms: bool
    address_lines: tuple[str, ...]
    zip: str | None
    birth_date: dt.date | None
    home_branch: str | None
    extra: dict[str, str]
    phones_unparsed: tuple[str, ...]

    def patron(self, *, agency_id: str, source_id: str, external_id: str) -> Patron:
        return Patron(
            agency_id=agency_id,
            patron_id=self.patron_id,
            name=self.name,
            status=self.status,
            expiry_date=self.expiry_date,
            email=self.email,
            phones=self.phones,
            sms_number=self.sms_number,
            want_sms=self.want_sms,
            address_lines=self.address_lines,
            zip=self.zip,
            birth_date=self.birth_date,
            home_branch=self.home_branch,
            source=source_id,
            external_id=external_id,
            extra=self.extra,
            phones_unparsed=self.phones_unparsed,
        )


def _invalid_number(text: str, field: str, exc: ValidationError) -> Fault:
    return Fault(
        field,
        f"{field} {text!r} is not a phone number that can be texted ({exc}): kept as written, "
        "shown to staff, never texted",
        Severity.WARNING,
    )


_TEXT_FIELDS = (
    "external_id", "patron_id", "first_name", "last_name", "email", "sms_number", "expiry",
    "birth_date", "home_branch", "zip",
)  # fmt: skip


def _refuse_nul(record: ImportedRecord, fault: Callable[[Fault], None]) -> None:
    """An error for each field holding a NUL character (``\\u0000`` in JSON): PostgreSQL cannot
    store one, and it ended the whole run there; now only that record is not imported."""
    texts = [getattr(record, name) for name in _TEXT_FIELDS]
    texts += record.phones
    texts += record.address_lines
    texts += (value for _, value in record.extra)
    if "\x00" not in "".join(texts):  # the common case: one search over the whole record
        return
    lists = {
        "phones": record.phones,
        "address_lines": record.address_lines,
        "extra": [value for _, value in record.extra],
    }
    for name in _TEXT_FIELDS:
        if "\x00" in getattr(record, name):
            fault(Fault(name, f"{name} contains a NUL character (\\u0000)"))
    for name, values in lists.items():
        if any("\x00" in value for value in values):
            fault(Fault(name, f"{name} contains a NUL character (\\u0000)"))


def _identity(record: ImportedRecord, fault: Callable[[Fault], None]) -> tuple[str, str, str]:
    """The patron id, name and e-mail, each fault given to ``fault``."""
    if not record.external_id:
        fault(Fault("external_id", "the record has no external id"))
    elif len(record.external_id) > MAX_EXTERNAL_ID:
        fault(Fault("external_id", f"external id is longer than {MAX_EXTERNAL_ID} characters"))
    patron_id = record.patron_id.strip()
    if not patron_id and "patron_id" not in record.absent:
        # (One the feed leaves out on purpose is made up when the patron is created.)
        fault(Fault("patron_id", "the record has no patron id (card number)"))
    elif len(patron_id) > MAX_PATRON_ID:
        fault(Fault("patron_id", f"patron id is longer than {MAX_PATRON_ID} characters"))
    name = " ".join(part for part in (record.first_name.strip(), record.last_name.strip()) if part)
    if not name:
        fault(Fault("name", "the record has no name"))
    elif len(name) > MAX_NAME:
        fault(Fault("name", f"name is longer than {MAX_NAME} characters"))
    email = record.email.strip()
    if len(email) > MAX_EMAIL:
        fault(Fault("email", f"email is longer than {MAX_EMAIL} characters"))
    return patron_id, name, email


def _numbers(
    record: ImportedRecord, country_code: str, fault: Callable[[Fault], None]
) -> tuple[tuple[str, ...], str | None, tuple[str, ...]]:
    """The phones and SMS number in E.164, and those that do not validate as written (each a
    warning given to ``fault``)."""
    # One record often gives the same mobile number as a phone and as the SMS number; phone
    # numbers are the slowest step of an import, so each distinct text is parsed once ("" for
    # one that does not validate).
    seen: dict[str, str] = {}
    numbers: dict[str, None] = {}  # in order, without repeats
    unparsed: dict[str, None] = {}
    for i, raw in enumerate(record.phones):
        if raw.strip():
            number = seen.get(raw)
            if number is None:
                try:
                    number = phone.normalise(raw, country_code, field=f"phones[{i}]")
                except ValidationError as exc:
                    number = ""
                    unparsed[raw.strip()[:MAX_UNPARSED]] = None
                    fault(_invalid_number(raw.strip()[:MAX_UNPARSED], f"phones[{i}]", exc))
                seen[raw] = number
            if number:
                numbers[number] = None
    sms = None
    if record.sms_number.strip():
        sms = seen.get(record.sms_number)
        if sms is None:
            try:
                sms = phone.normalise(record.sms_number, country_code, field="sms_number")
            except ValidationError as exc:
                text = record.sms_number.strip()[:MAX_UNPARSED]
                if text not in unparsed:
                    unparsed[text] = None
                    fault(_invalid_number(text, "sms_number", exc))
        sms = sms or None
    return tuple(numbers), sms, tuple(unparsed)


def _day(text: str, what: str, field: str, fmt: import_dates.DateFormat,
         fault: Callable[[Fault], None]) -> dt.date | None:  # fmt: skip
    try:
        return parse_date(text, what, fmt)
    except ValidationError as exc:
        fault(Fault(field, str(exc)))
        return None


def validate(
    record: ImportedRecord, *, country_code: str
) -> tuple[PatronFields | None, tuple[Fault, ...]]:
    """The values of the record's patron, and every fault found (all of them, not the first).

    The values are None when a fault is an error. A phone number that does not validate is a
    warning: the number is kept as written in ``phones_unparsed`` (shown to staff, never texted)
    and the patron is imported; FOLIO and Koha keep phones as free text, and a typo in one must
    not keep a student from borrowing.
    """
    faults: list[Fault] = []
    fault = faults.append
    _refuse_nul(record, fault)
    patron_id, name, email = _identity(record, fault)
    phones, sms, unparsed = _numbers(record, country_code, fault)
    expiry = _day(record.expiry, "expiry date", "expiry_date", record.date_format, fault)
    birth = _day(record.birth_date, "birth date", "birth_date", record.date_format, fault)
    if faults and any(f.severity is Severity.ERROR for f in faults):
        return None, tuple(faults)
    return PatronFields(
        patron_id=patron_id,
        name=name,
        status=PatronStatus.ACTIVE if record.active else PatronStatus.INACTIVE,
        expiry_date=expiry,
        email=email or None,
        phones=phones,
        sms_number=sms,
        want_sms=record.want_sms and (sms is not None or bool(phones)),
        address_lines=tuple(line.strip() for line in record.address_lines if line.strip()),
        zip=record.zip.strip() or None,
        birth_date=birth,
        home_branch=record.home_branch.strip() or None,
        extra=dict(record.extra),
        phones_unparsed=unparsed,
    ), tuple(faults)


def merge(stored: Patron, imported: Patron, keep: frozenset[str] = frozenset()) -> Patron:
    """The stored patron with the imported fields applied; a birth date the feed lacks, and the
    fields in ``keep`` (those the entry does not carry), are kept as stored."""
    changes = {name: getattr(imported, name) for name in IMPORTED_FIELDS if name not in keep}
    if imported.birth_date is None:
        changes["birth_date"] = stored.birth_date
    return dataclasses.replace(stored, **changes)


def changed_fields(stored: Patron, wanted: Patron) -> tuple[str, ...]:
    """The names of the imported fields whose values differ, in a fixed order."""
    return tuple(name for name in IMPORTED_FIELDS if getattr(stored, name) != getattr(wanted, name))
