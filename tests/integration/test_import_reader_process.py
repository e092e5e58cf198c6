"""The reader process: a real child process reads a feed exactly as the in-process reader does."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator

import pytest

from patronlink.domain.errors import SourceFormatError, SourceUnavailable
from patronlink.domain.import_records import (
    Checked,
    FeedItem,
    ImportedRecord,
    PendingRecord,
    RecordError,
    check,
    pending,
)
from patronlink.sources.formats import open_reader
from patronlink.sources.reader_process import KEEP, ReaderProcess
from tests.support.feeds import KOHA_HEADER, folio_body, folio_user, koha_body, koha_row

AGENCY, COUNTRY, SOURCE = "DK-761500", "45", "src"


def odd_users() -> list[object]:
    """Users of every kind a feed can hold: good, unreadable, invalid, odd JSON."""
    users: list[object] = [folio_user(i) for i in range(12)]
    users[1] = "not an object"
    users[2] = folio_user(2, personal="not an object")
    users[3] = folio_user(3, externalSystemId=17)  # read at once (not plain text)
    users[4] = folio_user(4, expirationDate="soon")  # invalid: not a date
    users[5]["personal"]["mobilePhone"] = "12"  # type: ignore[index]  # invalid: not a number
    users[6] = folio_user(6, externalSystemId="")  # unreadable: no external id
    users[7] = folio_user(7, active="yes")  # unreadable: active is not true or false
    users[8]["personal"]["lastName"] = 'Ærø "q" \\ 😀'  # type: ignore[index]
    users[9] = folio_user(9, barcode=1.5)  # a JSON number with a fraction (Decimal)
    users[10] = folio_user(10, expirationDate="")
    return users


def local(fmt: str, body: bytes) -> list[tuple[FeedItem, Checked | RecordError | None]]:
    out: list[tuple[FeedItem, Checked | RecordError | None]] = []
    for entry in open_reader(fmt, io.BytesIO(body), read_flag=True).entries():
        if isinstance(entry, RecordError):
            out.append((entry, None))
            continue
        item = pending(entry) if isinstance(entry, ImportedRecord) else entry
        record = item.read()
        checked = (
            record
            if isinstance(record, RecordError)
            else check(record, agency_id=AGENCY, country_code=COUNTRY, source_id=SOURCE)
        )
        out.append((item, checked))
    return out


def process(fmt: str, stream: io.RawIOBase | io.BytesIO, prefix: bytes = b"") -> ReaderProcess:
    return ReaderProcess(
        fmt,
        stream,  # type: ignore[arg-type]
        prefix,
        read_flag=True,
        agency_id=AGENCY,
        country_code=COUNTRY,
        source_id=SOURCE,
    )


def remote(reader: ReaderProcess, *, eager: bool, batch: int = 5) -> Iterator[FeedItem]:
    """The reader's entries, each batch checked as the synchroniser does."""
    items: list[FeedItem] = []

    def apply() -> Iterator[FeedItem]:
        wanted = [i for i in items if isinstance(i, PendingRecord)]
        reader.check(wanted, items[-1].number, eager)
        yield from items
        items.clear()

    for entry in reader.entries():
        items.append(entry)
        if len(items) == batch:
            yield from apply()
    if items:
        yield from apply()


def same(fmt: str, body: bytes, *, eager: bool, split: int = 0) -> None:
    expected = local(fmt, body)
    with process(fmt, io.BytesIO(body[split:]), body[:split]) as reader:
        got = list(remote(reader, eager=eager))
    assert len(got) == len(expected)
    for entry, (want, want_checked) in zip(got, expected, strict=True):
        if isinstance(want, RecordError):
            assert entry == want
            continue
        assert isinstance(entry, PendingRecord)
        assert isinstance(want, PendingRecord)
        assert (entry.number, entry.external_id, entry.fingerprint) == (
            want.number,
            want.external_id,
            want.fingerprint,
        )
        assert entry.checked == want_checked


@pytest.mark.parametrize("eager", [False, True], ids=["light", "full"])
def test_folio_entries_are_read_as_in_process(eager: bool) -> None:
    body = folio_body(odd_users(), deactivateMissingUsers=False)  # type: ignore[arg-type]
    same("folio-json", body, eager=eager, split=100)
    with process("folio-json", io.BytesIO(body)) as reader:
        list(remote(reader, eager=eager))
        assert reader.deactivate_missing is False


def test_koha_rows_are_read_as_in_process() -> None:
    rows = [koha_row(i) for i in range(4)]
    rows[2]["dateexpiry"] = "2027-13-45"
    body = koha_body(rows, [*KOHA_HEADER, "colour"])
    for eager in (False, True):
        same("koha-csv", body, eager=eager)
    with process("koha-csv", io.BytesIO(body)) as reader:
        list(remote(reader, eager=False))
        assert reader.notes == ["unknown columns ignored: colour"]


def test_more_entries_than_the_child_keeps() -> None:
    """The child waits for the parent beyond KEEP entries, and goes on once released."""
    count = KEEP + 1500
    body = folio_body([folio_user(i) for i in range(count)])
    with process("folio-json", io.BytesIO(body)) as reader:
        got = list(remote(reader, eager=False, batch=2000))
    assert [e.number for e in got] == list(range(1, count + 1))
    assert all(isinstance(e, PendingRecord) and e.checked is not None for e in got)


def test_a_malformed_body_fails_and_the_child_ends() -> None:
    body = folio_body([folio_user(i) for i in range(50)])
    truncated = io.BytesIO(body[: len(body) // 2])
    with (
        process("folio-json", truncated) as reader,
        pytest.raises(SourceFormatError, match="not complete FOLIO JSON"),
    ):
        list(remote(reader, eager=True))
    assert reader._process.poll() is not None


class _CutSource(io.RawIOBase):
    """A body that fails like a dropped connection after ``size`` bytes."""

    def __init__(self, body: bytes, size: int) -> None:
        self._body = io.BytesIO(body[:size])

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        data = self._body.read(len(buffer))
        if not data:
            raise SourceUnavailable("the connection was cut")
        buffer[: len(data)] = data
        return len(data)


def test_a_source_failing_midway_is_the_error_reported() -> None:
    body = folio_body([folio_user(i) for i in range(200)])
    source = io.BufferedReader(_CutSource(body, len(body) // 2))
    with process("folio-json", source) as reader, pytest.raises(SourceUnavailable, match="cut"):
        list(remote(reader, eager=False))


def test_stopping_early_ends_the_child() -> None:
    body = folio_body([folio_user(i) for i in range(KEEP * 2)])
    with process("folio-json", io.BytesIO(body)) as reader:
        first = next(reader.entries())
        assert first.number == 1
    assert reader._process.poll() is not None


def test_a_number_with_a_fraction_has_a_stable_fingerprint() -> None:
    """JSON that marshal cannot write (a Decimal) is fingerprinted through its repr."""

    def fingerprint(barcode: float) -> str:
        body = json.dumps({"users": [folio_user(1, barcode=barcode)]}).encode()
        entry = next(open_reader("folio-json", io.BytesIO(body), read_flag=False).entries())
        assert isinstance(entry, PendingRecord)
        return entry.fingerprint

    assert fingerprint(1.5) == fingerprint(1.5)
    assert fingerprint(1.5) != fingerprint(1.25)
