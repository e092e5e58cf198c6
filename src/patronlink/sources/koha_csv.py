"""Koha's borrowers CSV (a header row of column names, then one patron per row), as a stream.

Columns read: cardnumber, surname, firstname, email, phone, mobile, smsalertnumber, branchcode,
categorycode, dateexpiry, dateofbirth, userid, borrowernumber and the address columns (address,
address2, city, zipcode). Other Koha columns are ignored silently; columns Koha does not have are
reported once in the run's notes, not as errors.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import IO

from patronlink.domain.errors import SourceFormatError
from patronlink.domain.import_records import FeedItem, ImportedRecord, RecordError

REQUIRED = ("cardnumber", "surname")
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


def _row_record(number: int, row: dict[str, str]) -> ImportedRecord:
    def get(name: str) -> str:
        return (row.get(name) or "").strip()

    cardnumber = get("cardnumber")
    # Koha's own key survives a new library card; the card number is the fallback.
    external_id = get("borrowernumber") or get("userid") or cardnumber
    sms = get("smsalertnumber")
    extra = tuple(
        (key, value)
        for key, value in (("category", get("categorycode")), ("username", get("userid")))
        if value
    )
    return ImportedRecord(
        number=number,
        external_id=external_id,
        patron_id=cardnumber,
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
    )


class KohaCsvReader:
    def __init__(self, stream: IO[bytes], *, read_flag: bool = True) -> None:
        self._stream = stream
        self.deactivate_missing: bool | None = None  # a CSV has nowhere to say
        self.notes: list[str] = []

    def entries(self) -> Iterator[FeedItem]:
        """The records (a row is cheap to read, so none is left pending)."""
        return self.records()

    def records(self) -> Iterator[ImportedRecord | RecordError]:
        text = io.TextIOWrapper(self._stream, encoding="utf-8-sig", newline="")
        reader = csv.reader(text, strict=True)
        try:
            header = [name.strip() for name in next(reader, [])]
            if not header:
                return
            missing = [name for name in REQUIRED if name not in header]
            if missing:
                raise SourceFormatError(
                    f"the header row has no {' or '.join(missing)} column: not a Koha borrowers CSV"
                )
            unknown = [n for n in header if n and n not in KOHA_COLUMNS]
            if unknown:
                self.notes.append(f"unknown columns ignored: {', '.join(unknown)}")
            width = len(header)
            for number, values in enumerate(reader, start=1):
                if not any(v.strip() for v in values):
                    continue
                if len(values) != width:
                    yield RecordError(
                        number, f"the row has {len(values)} fields, the header {width}"
                    )
                    continue
                if any(len(v) > MAX_FIELD for v in values):
                    yield RecordError(number, "a field is longer than 1 MiB")
                    continue
                yield _row_record(number, dict(zip(header, values, strict=True)))
        except csv.Error as exc:
            raise SourceFormatError(f"the body is not valid CSV: {exc}") from exc
        except UnicodeDecodeError as exc:
            raise SourceFormatError(f"the body is not UTF-8 text: {exc}") from exc
        finally:
            text.detach()
