"""Patron files as FOLIO and Koha write them, read and validated without a database."""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError as PydanticError

from patronlink.config.schema import ImportSourceConfig
from patronlink.domain import import_dates
from patronlink.domain.errors import SourceFormatError
from patronlink.domain.import_records import (
    ImportedRecord,
    PendingRecord,
    RecordError,
    Severity,
    check,
    merge,
    validate,
)
from patronlink.sources.base import ReaderOptions
from patronlink.sources.folio_json import FolioJsonReader, present_only
from patronlink.sources.koha_csv import KOHA_COLUMNS, NATURAL_KEY, KohaCsvReader
from tests.support import field_samples as samples

AGENCY, COUNTRY, SOURCE = "DK-761500", "45", "ucl"


def records(reader: FolioJsonReader | KohaCsvReader) -> list[ImportedRecord | RecordError]:
    return list(reader.records())


def one(reader: FolioJsonReader | KohaCsvReader) -> ImportedRecord:
    (record,) = records(reader)
    assert isinstance(record, ImportedRecord)
    return record


def koha(body: bytes, **options: object) -> KohaCsvReader:
    return KohaCsvReader(io.BytesIO(body), options=ReaderOptions(**options))  # type: ignore[arg-type]


def folio(body: bytes, **options: object) -> FolioJsonReader:
    return FolioJsonReader(io.BytesIO(body), options=ReaderOptions(**options))  # type: ignore[arg-type]


# --- warnings beside errors ---------------------------------------------------------------------


def test_a_phone_that_does_not_validate_is_a_warning_and_kept_as_written() -> None:
    record = one(folio(samples.FOLIO_CLIENT_MOBILE))
    checked = check(record, agency_id=AGENCY, country_code=COUNTRY, source_id=SOURCE)
    assert checked.patron is not None  # imported: a typo in a phone keeps nobody out
    assert checked.patron.phones == ()
    assert checked.patron.sms_number is None
    assert checked.patron.phones_unparsed == ("86 130 6785 1536",)
    assert checked.patron.patron_id == "4268755EWL"  # empty barcode: the username
    (fault,) = checked.faults
    assert (fault.field, fault.severity) == ("phones[1]", Severity.WARNING)
    assert "'86 130 6785 1536'" in fault.reason
    assert "never texted" in fault.reason


def test_every_fault_of_a_record_is_reported() -> None:
    record = ImportedRecord(
        number=7, external_id="x", patron_id="", first_name="", last_name="",
        phones=("12",), expiry="31/31/2027", birth_date="never",
    )  # fmt: skip
    fields, faults = validate(record, country_code=COUNTRY)
    assert fields is None
    by_field = {f.field: f.severity for f in faults}
    assert by_field == {
        "patron_id": Severity.ERROR,
        "name": Severity.ERROR,
        "phones[0]": Severity.WARNING,
        "expiry_date": Severity.ERROR,
        "birth_date": Severity.ERROR,
    }
    checked = check(record, agency_id=AGENCY, country_code=COUNTRY, source_id=SOURCE)
    findings = checked.findings(7)
    assert {(f.number, f.external_id) for f in findings} == {(7, "x")}
    assert len(findings) == 5
    # Kept as written, but not without limit.
    long = dataclasses.replace(
        record, patron_id="p", first_name="A", phones=("x" * 5000,), expiry="", birth_date=""
    )
    fields, _ = validate(long, country_code=COUNTRY)
    assert fields is not None
    assert fields.phones_unparsed == ("x" * 64,)


# --- FOLIO as FOLIO sends it ---------------------------------------------------------------------


def test_folio_collection_example() -> None:
    reader = folio(samples.FOLIO_COLLECTION_EXAMPLE)
    record = one(reader)
    assert reader.deactivate_missing is True
    assert (record.external_id, record.patron_id) == ("111_112", "1234567")
    assert record.first_name == "Jackie"  # preferredFirstName is the name used
    assert record.want_sms is False  # "mail"
    extra = dict(record.extra)
    assert extra["custom.scope"] == "Design"
    assert extra["custom.specialization"] == "Business,Jurisprudence"
    assert extra["departments"] == "Accounting,Finance,Chemistry"
    assert extra["enrollment_date"] == "2017-01-01"
    assert extra["request_preference.fulfillment"] == "Hold Shelf"
    assert extra["request_preference.holdShelf"] == "true"
    patron = check(record, agency_id=AGENCY, country_code=COUNTRY, source_id=SOURCE).patron
    assert patron is not None
    assert patron.name == "Jackie Handey"
    assert patron.phones == ("+3655230348", "+3655379130")
    assert patron.address_lines == ("Andrássy Street 1.", "Budapest")
    assert patron.expiry_date == dt.date(2019, 1, 1)


def test_folio_user_import_test_resource() -> None:
    body = samples.FOLIO_USER_IMPORT_TEST
    assert present_only(body)
    got = records(folio(body, update_only_present=True))
    usul, chani, groupless = got
    assert isinstance(usul, ImportedRecord)
    assert isinstance(chani, ImportedRecord)
    assert isinstance(groupless, ImportedRecord)
    assert (usul.first_name, usul.patron_id) == ("Usul", "usul")
    assert dict(usul.extra)["custom.classYear"] == "2023"
    assert dict(chani.extra)["pronouns"] == "He/Him"
    # updateOnlyPresentFields: what a user does not carry is kept as stored.
    assert {"email", "phones", "sms_number", "expiry_date", "address_lines"} <= usul.absent
    assert "status" not in usul.absent
    assert "status" in groupless.absent


@pytest.mark.parametrize(
    ("contact", "want_sms"),
    [("003", True), ("text", True), ("Text", True), ("001", False), ("mail", False),
     ("002", False), ("email", False), ("004", False), ("phone", False), ("005", False),
     ("mobile", False), ("", False)],
)  # fmt: skip
def test_folio_contact_type_by_name_or_id(contact: str, want_sms: bool) -> None:
    body = (
        b'{"users": [{"externalSystemId": "e1", "personal": {"lastName": "A", '
        b'"mobilePhone": "52903991", "preferredContactTypeId": "' + contact.encode() + b'"}}]}'
    )
    assert one(folio(body)).want_sms is want_sms


def test_merge_keeps_what_the_entry_does_not_carry() -> None:
    full = ImportedRecord(1, "e", "p", "A", "B", email="a@b.dk", phones=("52903991",))
    stored = check(full, agency_id=AGENCY, country_code=COUNTRY, source_id=SOURCE).patron
    bare = dataclasses.replace(full, email="", phones=(), absent=frozenset({"email", "phones"}))
    checked = check(bare, agency_id=AGENCY, country_code=COUNTRY, source_id=SOURCE)
    assert stored is not None
    assert checked.patron is not None
    merged = merge(stored, checked.patron, checked.keep)
    assert (merged.email, merged.phones) == ("a@b.dk", ("+4552903991",))
    assert merge(stored, checked.patron).email is None  # without the flag it is cleared


def test_folio_mapping_reads_other_paths() -> None:
    body = (
        b'{"users": [{"externalSystemId": "e1", "barcode": "b1", "customFields": '
        b'{"studentId": "S-9", "sms": "52903991"}, "personal": {"lastName": "A"}}]}'
    )
    options = {"patron_id": "customFields.studentId", "sms_number": "customFields.sms"}
    record = one(folio(body, **options))
    assert (record.patron_id, record.sms_number) == ("S-9", "52903991")
    (entry,) = list(folio(body, external_id="customFields.studentId").entries())
    assert isinstance(entry, PendingRecord)
    assert entry.external_id == "S-9"
    # A mapping is part of the fingerprint: changing it reads every user again.
    (plain,) = list(folio(body).entries())
    assert isinstance(plain, PendingRecord)
    assert plain.fingerprint != entry.fingerprint


# --- Koha CSV as Koha writes it -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "fmt"), [(samples.KOHA_IMPORT_T_US, "us"), (samples.KOHA_IMPORT_T_METRIC, "metric")]
)
def test_koha_import_t_dates_are_decided_from_the_file(line: str, fmt: str) -> None:
    reader = koha(samples.koha_file(samples.KOHA_IMPORT_T_HEADER, line))
    record = one(reader)
    assert record.date_format == fmt
    fields, faults = validate(record, country_code="1")
    assert fields is not None
    assert fields.expiry_date == dt.date(2015, 7, 1)
    assert fields.birth_date == dt.date(1965, 10, 16)
    assert reader.notes == [f"dates read as {fmt} ({import_dates.PATTERNS[fmt]})"]
    # Koha's test phones (7-(388)559-6763) are not numbers: kept as written, each a warning.
    assert fields.phones_unparsed == ("7-(388)559-6763", "3-(373)151-4471")
    assert [f.severity for f in faults] == [Severity.WARNING, Severity.WARNING]


def test_koha_ambiguous_file_is_refused_with_a_clear_message() -> None:
    line = samples.KOHA_IMPORT_T_US.replace("10/16/1965", "").replace("12/28/2014", "")
    with pytest.raises(SourceFormatError, match=r"could be us \(MM/DD/YYYY\) or metric"):
        records(koha(samples.koha_file(samples.KOHA_IMPORT_T_HEADER, line)))
    # Told the format, the same file reads.
    told = one(koha(samples.koha_file(samples.KOHA_IMPORT_T_HEADER, line), date_format="metric"))
    assert told.date_format == "metric"
    assert validate(told, country_code="1")[0] is not None


def test_koha_dates_in_a_named_format_that_do_not_fit_are_record_errors() -> None:
    record = one(
        koha(samples.koha_file(samples.KOHA_IMPORT_T_HEADER, samples.KOHA_IMPORT_T_US),
             date_format="dmydot")
    )  # fmt: skip
    fields, faults = validate(record, country_code="1")
    assert fields is None
    assert any("(DD.MM.YYYY)" in f.reason for f in faults)


def test_koha_attributes_bom_crlf_and_no_cardnumber() -> None:
    body = samples.koha_file(
        samples.KOHA_IMPORT_T_ATTRIBUTES_HEADER, samples.KOHA_IMPORT_T_ATTRIBUTES
    )
    record = one(koha(body))
    extra = dict(record.extra)
    assert extra["attribute.SHOW_BCODE"] == "1"
    assert extra["attribute.HOBBY"] == "chess"
    assert record.patron_id == "1001"
    # Only a surname, branch and category (what Koha needs), in a file of every Koha column.
    header = ",".join(sorted(KOHA_COLUMNS - {"cardnumber", "borrowernumber", "userid"}))
    values = {"surname": "Jensen", "firstname": "Karen", "branchcode": "CPL", "categorycode": "PT"}
    row = ",".join(
        values.get(c, "") for c in sorted(KOHA_COLUMNS - {"cardnumber", "borrowernumber", "userid"})
    )
    bare = one(koha(samples.koha_file(header, row)))
    assert bare.patron_id == ""
    assert "patron_id" in bare.absent
    assert bare.external_id.startswith(NATURAL_KEY)
    assert validate(bare, country_code=COUNTRY)[0] is not None  # a patron id will be made up
    again = one(koha(samples.koha_file(header, row, bom=False).replace(b"\r\n", b"\n")))
    assert again.external_id == bare.external_id  # the same person, found again next time


def test_koha_mapping_names_columns() -> None:
    body = samples.koha_file("surname,studentno,sms,cardnumber", "Jensen,S-1,52903991,c1")
    record = one(koha(body, patron_id="studentno", external_id="studentno", sms_number="sms"))
    assert (record.patron_id, record.external_id, record.sms_number) == ("S-1", "S-1", "52903991")
    with pytest.raises(SourceFormatError, match="no studentid column"):
        records(koha(body, patron_id="studentid"))


# --- dates: property tests ----------------------------------------------------------------------

WRITERS = {
    "iso": lambda d: d.isoformat(),
    "us": lambda d: f"{d.month:02}/{d.day:02}/{d.year:04}",
    "metric": lambda d: f"{d.day:02}/{d.month:02}/{d.year:04}",
    "dmydot": lambda d: f"{d.day:02}.{d.month:02}.{d.year:04}",
}
DATES = st.dates(min_value=dt.date(1000, 1, 1), max_value=dt.date(9999, 12, 31))


@given(DATES, st.sampled_from(import_dates.FORMATS))
def test_each_format_reads_what_it_writes(day: dt.date, fmt: import_dates.DateFormat) -> None:
    assert import_dates.read(WRITERS[fmt](day), fmt) == day
    assert fmt in import_dates.candidates(WRITERS[fmt](day))


@settings(max_examples=200)
@given(st.lists(DATES, min_size=1, max_size=20), st.sampled_from(import_dates.FORMATS))
def test_auto_never_guesses(days: list[dt.date], fmt: import_dates.DateFormat) -> None:
    """``decide`` names the format the file was written in, or refuses; never another one."""
    values = [WRITERS[fmt](d) for d in days]
    try:
        decided = import_dates.decide(values)
    except import_dates.Undecided:
        assert fmt in ("us", "metric")
        assert all(d.day <= 12 for d in days)
        return
    assert decided == fmt
    assert [import_dates.read(v, decided) for v in values] == days


@given(st.text(max_size=30))
def test_reading_any_text_never_raises(text: str) -> None:
    for fmt in import_dates.FORMATS:
        day = import_dates.read(text, fmt)
        assert day is None or isinstance(day, dt.date)


# --- mapping: property tests --------------------------------------------------------------------

NAMES = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,10}", fullmatch=True)


@given(st.lists(NAMES, min_size=1, max_size=3).map(".".join))
def test_mapping_accepts_json_paths_for_folio_only_columns_for_koha(path: str) -> None:
    base = {"id": "s", "agency": AGENCY, "url": "file:///x"}
    folio_config = ImportSourceConfig.model_validate(
        {**base, "format": "folio-json", "mapping": {"patron_id": path}}
    )
    assert folio_config.mapping.patron_id == path
    if "." in path:
        with pytest.raises(PydanticError, match="is not a column name"):
            ImportSourceConfig.model_validate(
                {**base, "format": "koha-csv", "mapping": {"patron_id": path}}
            )


@given(
    st.text(min_size=1, max_size=20).filter(
        # The configuration strips white space around every value first.
        lambda t: not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*", t.strip())
    )
)
def test_mapping_refuses_what_is_no_path(value: str) -> None:
    base = {"id": "s", "agency": AGENCY, "url": "file:///x", "format": "folio-json"}
    with pytest.raises(PydanticError):
        ImportSourceConfig.model_validate({**base, "mapping": {"sms_number": value}})


@settings(max_examples=100, deadline=None)
@given(
    st.fixed_dictionaries(
        {"studentno": st.from_regex(r"[A-Z0-9-]{1,12}", fullmatch=True),
         "surname": st.from_regex(r"[A-Za-z]{1,12}", fullmatch=True)}
    )
)  # fmt: skip
def test_koha_mapping_reads_the_named_column(row: dict[str, str]) -> None:
    body = samples.koha_file(
        "cardnumber,surname,studentno", f"c,{row['surname']},{row['studentno']}"
    )
    record = one(koha(body, patron_id="studentno"))
    assert record.patron_id == row["studentno"]
    assert record.last_name == row["surname"]
