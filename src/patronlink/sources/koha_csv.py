"""Koha's borrowers CSV (a header row of column names, then one patron per row), as a stream.

As Koha's patron import tool documents it and Koha's own tests write it (``Koha/Patrons/Import``):
UTF-8 with or without a BOM, CRLF or LF line ends, dates in the library's ``dateformat`` system
preference (``iso``, ``us``, ``metric``, ``dmydot``; ``auto`` decides from the values), only
``surname`` required (Koha numbers patrons itself), extended attributes in one
``patron_attributes`` column as ``CODE:value,CODE:value``.

Columns read: cardnumber, surname, firstname, email, phone, mobile, smsalertnumber, branchcode,
categorycode, dateexpiry, dateofbirth, userid, borrowernumber, patron_attributes and the address
columns (address, address2, city, zipcode). Other Koha columns are ignored silently; columns Koha
does not have are reported once in the run's notes, not as errors.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Iterator
from typing import IO

from patronlink.domain import import_dates
from patronlink.domain.errors import SourceFormatError
from patronlink.domain.import_records import FeedItem, ImportedRecord, RecordError
from patronlink.sources.base import ReaderOptions

REQUIRED = ("surname",)
# The date columns read, which decide an ``auto`` date format.
DATE_COLUMNS = ("dateexpiry", "dateofbirth")
# With ``auto``, rows are held until their dates tell the format; a file whose first this many
# rows do not is refused (memory stays bounded whatever the file's size).
UNDECIDED_ROWS = 10_000
# The prefix of the match key of a row that has no cardnumber, borrowernumber or userid.
NATURAL_KEY = "koha-name:"
# Koha's borrowers table (what its patron import and export know), so that an unknown column is
# reported and a known one we do not use is not.
KOHA_COLUMNS = frozenset(
    [
        "borrowernumber",
        "cardnumber",
        "surname",
        "firstname",
        "middle_name",
        "title",
        "othernames",
        "initials",
        "pronouns",
        "streetnumber",
        "streettype",
        "address",
        "address2",
        "city",
        "state",
        "zipcode",
        "country",
        "email",
        "phone",
        "mobile",
        "fax",
        "emailpro",
        "phonepro",
        "B_streetnumber",
        "B_streettype",
        "B_address",
        "B_address2",
        "B_city",
        "B_state",
        "B_zipcode",
        "B_country",
        "B_email",
        "B_phone",
        "dateofbirth",
        "branchcode",
        "categorycode",
        "dateenrolled",
        "dateexpiry",
        "password_expiration_date",
        "date_renewed",
        "gonenoaddress",
        "lost",
        "debarred",
        "debarredcomment",
        "contactname",
        "contactfirstname",
        "contacttitle",
        "borrowernotes",
        "relationship",
        "sex",
        "password",
        "secret",
        "auth_method",
        "flags",
        "userid",
        "opacnote",
        "contactnote",
        "sort1",
        "sort2",
        "altcontactfirstname",
        "altcontactsurname",
        "altcontactaddress1",
        "altcontactaddress2",
        "altcontactaddress3",
        "altcontactstate",
        "altcontactzipcode",
        "altcontactcountry",
        "altcontactphone",
        "smsalertnumber",
        "sms_provider_id",
        "privacy",
        "privacy_guarantor_fines",
        "privacy_guarantor_checkouts",
        "checkprevcheckout",
        "updated_on",
        "lastseen",
        "lang",
        "login_attempts",
        "overdrive_auth_token",
        "anonymized",
        "autorenew_checkouts",
        "primary_contact_method",
        "patron_attributes",
        "guarantor_relationship",
        "guarantor_id",
    ]
)
MAX_FIELD = 1024 * 1024


def _attributes(text: str) -> tuple[tuple[str, str], ...]:
    """Koha's ``patron_attributes`` (``CODE:value,CODE:value``) as ``attribute.CODE`` entries of
    ``extra``; a repeated code's values are joined by commas, as Koha writes them."""
    found: dict[str, list[str]] = {}
    for part in text.split(","):
        code, colon, value = part.partition(":")
        code, value = code.strip(), value.strip()
        if not colon or not code:
            # Not Koha's form: kept whole rather than guessed at.
            return (("patron_attributes", text.strip()),)
        found.setdefault(code, []).append(value)
    return tuple((f"attribute.{code}", ",".join(values)) for code, values in found.items())


def _natural_key(get: dict[str, str]) -> str:
    """A match key for a row with no number of any kind: the person's names and birth date.

    Koha itself needs only a surname and numbers the patron; a later export of the same person
    gives the same key, so the patron is found again rather than created twice.
    """
    person = "\x1f".join(get.get(c, "") for c in ("surname", "firstname", "dateofbirth"))
    return NATURAL_KEY + hashlib.blake2b(person.casefold().encode(), digest_size=12).hexdigest()


def _row_record(
    number: int, row: dict[str, str], options: ReaderOptions, date_format: import_dates.DateFormat
) -> ImportedRecord:
    def get(name: str) -> str:
        return (row.get(name) or "").strip()

    cardnumber, borrowernumber, userid = get("cardnumber"), get("borrowernumber"), get("userid")
    absent: frozenset[str] = frozenset()
    if options.patron_id is not None:
        patron_id = get(options.patron_id)
    else:
        # Koha numbers a patron itself when the row has no card number; so do we (a generated
        # patron id), and keep it through later runs.
        patron_id = cardnumber or borrowernumber or userid
        if not patron_id:
            absent = frozenset({"patron_id"})
    if options.external_id is not None:
        external_id = get(options.external_id)
    else:
        # Koha's own key survives a new library card; the card number is the fallback.
        external_id = (
            borrowernumber
            or userid
            or cardnumber
            or _natural_key({c: get(c) for c in ("surname", "firstname", "dateofbirth")})
        )
    sms = get(options.sms_number or "smsalertnumber")
    extra = tuple(
        (key, value) for key, value in (("category", get("categorycode")), ("username", userid))
        if value
    )  # fmt: skip
    attributes = get("patron_attributes")
    if attributes:
        extra = (*extra, *_attributes(attributes))
    return ImportedRecord(
        number=number,
        external_id=external_id,
        patron_id=patron_id,
        first_name=get("firstname"),
        last_name=get("surname"),
        email=get("email"),
        phones=(get("phone"), get("mobile")),
        sms_number=sms,
        want_sms=bool(sms),
        expiry=get("dateexpiry"),
        birth_date=get("dateofbirth"),
        home_branch=get("branchcode"),
        address_lines=(get("address"), get("address2"), get("city")),
        zip=get("zipcode"),
        extra=extra,
        date_format=date_format,
        absent=absent,
    )


class KohaCsvReader:
    def __init__(
        self, stream: IO[bytes], *, read_flag: bool = True, options: ReaderOptions | None = None
    ) -> None:
        self._stream = stream
        self._options = options or ReaderOptions()
        self.deactivate_missing: bool | None = None  # a CSV has nowhere to say
        self.notes: list[str] = []
        self.present_only = False

    def entries(self) -> Iterator[FeedItem]:
        """The records (a row is cheap to read, so none is left pending)."""
        return self.records()

    def _header(self, reader: Iterator[list[str]]) -> list[str]:
        header = [name.strip() for name in next(reader, [])]
        if not header:
            return header
        wanted = [*REQUIRED, *(c for c in self._mapped() if c)]
        missing = [name for name in wanted if name not in header]
        if missing:
            raise SourceFormatError(
                f"the header row has no {' or '.join(missing)} column: not a Koha borrowers CSV"
                " (or not as the source's mapping says)"
            )
        known = KOHA_COLUMNS.union(self._mapped())
        unknown = [n for n in header if n and n not in known]
        if unknown:
            self.notes.append(f"unknown columns ignored: {', '.join(unknown)}")
        return header

    def _mapped(self) -> list[str]:
        o = self._options
        return [c for c in (o.patron_id, o.external_id, o.sms_number) if c]

    def _rows(
        self, reader: Iterator[list[str]], header: list[str]
    ) -> Iterator[RecordError | dict[str, str]]:
        width = len(header)
        for number, values in enumerate(reader, start=1):
            if not any(v.strip() for v in values):
                continue
            if len(values) != width:
                yield RecordError(number, f"the row has {len(values)} fields, the header {width}")
                continue
            if any(len(v) > MAX_FIELD for v in values):
                yield RecordError(number, "a field is longer than 1 MiB")
                continue
            row = dict(zip(header, values, strict=True))
            row[""] = str(number)  # no column has an empty name that is read
            yield row

    def records(self) -> Iterator[ImportedRecord | RecordError]:
        text = io.TextIOWrapper(self._stream, encoding="utf-8-sig", newline="")
        reader = csv.reader(text, strict=True)
        try:
            header = self._header(reader)
            if not header:
                return
            yield from self._records(self._rows(reader, header))
        except import_dates.Undecided as exc:
            raise SourceFormatError(str(exc)) from None
        except csv.Error as exc:
            raise SourceFormatError(f"the body is not valid CSV: {exc}") from exc
        except UnicodeDecodeError as exc:
            raise SourceFormatError(f"the body is not UTF-8 text: {exc}") from exc
        finally:
            text.detach()

    def _records(
        self, rows: Iterator[RecordError | dict[str, str]]
    ) -> Iterator[ImportedRecord | RecordError]:
        options = self._options
        fmt = options.date_format
        if fmt == "auto":
            # Rows wait until their dates tell the format (nearly always within a few rows: the
            # first day after the 12th, or the first ISO date).
            judge = import_dates.Judge()
            held: list[RecordError | dict[str, str]] = []
            for row in rows:
                held.append(row)
                if isinstance(row, dict):
                    for column in DATE_COLUMNS:
                        judge.add(row.get(column) or "")
                if judge.decided or len(held) >= UNDECIDED_ROWS:
                    break
            decided = judge.result() or "iso"  # no dates at all: the format does not matter
            if decided != "iso":  # worth a word: the file decided it
                self.notes.append(f"dates read as {decided} ({import_dates.PATTERNS[decided]})")
            for row in held:
                yield row if isinstance(row, RecordError) else self._record(row, decided)
            fmt = decided
        for row in rows:
            yield row if isinstance(row, RecordError) else self._record(row, fmt)

    def _record(self, row: dict[str, str], fmt: import_dates.DateFormat) -> ImportedRecord:
        return _row_record(int(row.pop("")), row, self._options, fmt)
