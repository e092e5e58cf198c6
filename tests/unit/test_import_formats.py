"""The feed readers: spec-shaped examples, and arbitrary bytes never crash them."""

from __future__ import annotations

import contextlib
import io
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from patronlink.domain import phone
from patronlink.domain.errors import InvalidPhoneNumber, SourceFormatError
from patronlink.domain.import_records import ImportedRecord, PendingRecord, RecordError
from patronlink.sources.folio_json import FolioJsonReader
from patronlink.sources.koha_csv import KohaCsvReader

FOLIO = {
    "users": [
        {
            "username": "jhandey",
            "externalSystemId": "111_112",
            "barcode": "1234567",
            "active": True,
            "patronGroup": "staff",
            "expirationDate": "2027-06-30",
            "personal": {
                "lastName": "Handey",
                "firstName": "Jack",
                "email": "jhandey@example.org",
                "phone": "+45 86 12 34 56",
                "mobilePhone": "52903991",
                "preferredContactTypeId": "003",
                "addresses": [
                    {"addressLine1": "Other St", "city": "X", "primaryAddress": False},
                    {"addressLine1": "Main St 1", "city": "Horsens", "postalCode": "8700",
                     "primaryAddress": True},
                ],
            },
        },
        {"externalSystemId": 5, "personal": "not an object"},
        {"username": "nobody"},
    ],
    "totalRecords": 3,
    "deactivateMissingUsers": False,
}  # fmt: skip


def read(reader: FolioJsonReader | KohaCsvReader) -> list[ImportedRecord | RecordError]:
    return list(reader.records())


def test_folio_example() -> None:
    reader = FolioJsonReader(io.BytesIO(json.dumps(FOLIO).encode()))
    first, second, third = read(reader)
    assert isinstance(first, ImportedRecord)
    assert (first.external_id, first.patron_id) == ("111_112", "1234567")
    assert first.phones == ("+45 86 12 34 56", "52903991")
    assert first.want_sms
    assert first.address_lines == ("Main St 1", "", "Horsens")
    assert dict(first.extra) == {"username": "jhandey", "patron_group": "staff"}
    assert isinstance(second, RecordError)
    assert "personal is not an object" in second.reason
    assert isinstance(third, RecordError)
    assert "externalSystemId" in third.reason
    assert reader.deactivate_missing is False


def test_folio_entries_are_the_records_left_pending() -> None:
    body = json.dumps(FOLIO).encode()
    records = read(FolioJsonReader(io.BytesIO(body)))
    entries = list(FolioJsonReader(io.BytesIO(body)).entries())
    assert [e.read() if isinstance(e, PendingRecord) else e for e in entries] == records
    first = entries[0]
    assert isinstance(first, PendingRecord)
    assert first.external_id == "111_112"
    assert not isinstance(entries[1], PendingRecord)  # an external id that is not text

    def first_entry(feed: dict[str, object]) -> PendingRecord:
        entry = next(FolioJsonReader(io.BytesIO(json.dumps(feed).encode())).entries())
        assert isinstance(entry, PendingRecord)
        return entry

    assert first_entry(FOLIO).fingerprint == first.fingerprint
    changed = json.loads(body)
    changed["users"][0]["personal"]["email"] = "other@example.org"
    assert first_entry(changed).fingerprint != first.fingerprint


def test_folio_truncated() -> None:
    body = json.dumps(FOLIO).encode()
    with pytest.raises(SourceFormatError, match="not complete"):
        read(FolioJsonReader(io.BytesIO(body[:200])))


def test_koha_example_and_unknown_columns() -> None:
    body = (
        b"cardnumber,surname,firstname,mobile,smsalertnumber,dateexpiry,colour\r\n"
        b'42,Hansen,"Mette, M.",52903991,52903991,2027-01-31,blue\r\n'
        b"43,Short\r\n"
    )
    reader = KohaCsvReader(io.BytesIO(body))
    first, second = read(reader)
    assert isinstance(first, ImportedRecord)
    assert (first.patron_id, first.first_name, first.sms_number) == ("42", "Mette, M.", "52903991")
    assert isinstance(second, RecordError)
    assert second.number == 2
    assert reader.notes == ["unknown columns ignored: colour"]


def test_koha_without_required_columns() -> None:
    # Koha needs only a surname (it numbers patrons itself).
    with pytest.raises(SourceFormatError, match="no surname column"):
        read(KohaCsvReader(io.BytesIO(b"name,email\r\nx,y\r\n")))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_folio_arbitrary_bytes(body: bytes) -> None:
    try:
        read(FolioJsonReader(io.BytesIO(body)))
        read(FolioJsonReader(io.BytesIO(body), read_flag=False))
    except SourceFormatError:
        pass


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.binary(max_size=400),
        st.builds(
            lambda rows: ("cardnumber,surname,firstname\r\n" + rows).encode(),
            st.text(max_size=300),
        ),
    )
)
def test_koha_arbitrary_bytes(body: bytes) -> None:
    with contextlib.suppress(SourceFormatError):
        read(KohaCsvReader(io.BytesIO(body)))


@settings(max_examples=300, deadline=None)
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=20),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner),
        max_leaves=20,
    )
)
def test_folio_arbitrary_users(user: object) -> None:
    body = json.dumps({"users": [user]}).encode()
    (item,) = read(FolioJsonReader(io.BytesIO(body)))
    assert isinstance(item, ImportedRecord | RecordError)


def _full_parse(raw: str, cc: str) -> str | None:
    import phonenumbers

    region = phone.region_for_country_code(cc)
    text = raw.strip()
    candidates = [text]
    digits = "".join(c for c in text if c.isdigit())
    if text[:1].isdigit() and digits.startswith(cc) and not digits.startswith("00"):
        candidates.append("+" + digits)
    for candidate in candidates:
        try:
            number = phonenumbers.parse(candidate, region)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number(number):
            return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    return None


@settings(max_examples=500, deadline=None)
@given(
    st.sampled_from(["45", "46", "47", "44", "49", "1", "39", "354"]),
    st.text(alphabet="0123456789", min_size=1, max_size=13),
    st.sampled_from(["{d}", "+{cc}{d}", "+{cc} {d}", "{cc}{d}", "{d} ", "0{d}"]),
)
def test_fast_phone_path_agrees_with_the_full_parse(cc: str, digits: str, shape: str) -> None:
    raw = shape.format(cc=cc, d=digits)
    try:
        ours: str | None = phone.normalise(raw, cc)
    except InvalidPhoneNumber:
        ours = None
    assert ours == _full_parse(raw, cc)
