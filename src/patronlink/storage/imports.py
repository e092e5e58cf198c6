"""Bulk reads and writes of patron import: matching a batch of records, creating and updating
many patrons at once, and the per-patron import state (last digest, consecutive missing runs).

An import is measured in tens of thousands of patrons a second, so every method works on a whole
batch with a fixed number of statements, and the hot ones run on the driver itself
(``raw_driver.Driver``, inside the caller's transaction) rather than through SQLAlchemy: a
batch's lookups are one statement each with the batch's ids as one parameter (``PAGE`` at a
time); created patrons, their numbers and their state are inserted with PostgreSQL's binary
``COPY`` (from a writer thread, see ``ImportStore``) or SQLite's ``executemany``; the source's
digests and its population are streamed a page at a time. Updates, state upserts and
deactivations are rarer and go through SQLAlchemy Core as ``executemany``.
"""

from __future__ import annotations

import datetime as dt
import json
from array import array
from bisect import bisect_left
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from json.encoder import encode_basestring_ascii as _quote
from typing import Any, NamedTuple

from sqlalchemy import (
    Connection,
    bindparam,
    delete,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from patronlink.domain.patron import Patron, PatronStatus
from patronlink.storage.patrons import PatronRepository, patron_row_values
from patronlink.storage.raw import bind_time
from patronlink.storage.raw_driver import Driver
from patronlink.storage.tables import (
    import_patron_state,
    patron_id_sequences,
    patron_phones,
    patrons,
)

PAGE = 5000
_PATRON_COLUMNS = (
    "id", "agency_id", "patron_id", "name", "status", "expiry_date", "email", "sms_number",
    "want_sms", "address_lines", "zip", "birth_date", "home_branch", "source", "external_id",
    "extra", "phones_unparsed", "created_at", "updated_at",
)  # fmt: skip
_PHONE_COLUMNS = ("patron_pk", "position", "agency_id", "number", "kind")
_STATE_COLUMNS = ("patron_pk", "digest", "missing_runs")
# The columns' types for PostgreSQL's binary COPY (the JSON columns are sent as their text, as
# json's binary form is).
_PATRON_TYPES = (
    "int4", "text", "text", "text", "text", "date", "text", "text", "bool", "text", "text",
    "date", "text", "text", "text", "text", "text", "timestamptz", "timestamptz",
)  # fmt: skip
_PHONE_TYPES = ("int4", "int4", "text", "text", "text")
_STATE_TYPES = ("int4", "text", "int4")


@dataclass(frozen=True, slots=True)
class Known:
    """A stored patron as matching needs it."""

    pk: int
    patron_id: str
    source: str | None
    external_id: str | None
    digest: str | None
    missing_runs: int
    has_state: bool


class NewPatron(NamedTuple):
    """A patron to create, with the digest of the entry it is read from."""

    patron: Patron
    digest: str


class PatronState(NamedTuple):
    """A patron's import state: the digest it was last written from, and how many runs in a row
    have not found it."""

    pk: int
    digest: str | None
    missing_runs: int


def _columns(patron: Patron) -> dict[str, Any]:
    return {"patron_id": patron.patron_id, **patron_row_values(patron)}


def _numbers(patron: Patron) -> list[tuple[str, str]]:
    """(number, kind) of each row of patron_phones, in position order."""
    rows = [(n, "phone") for n in patron.phones]
    if patron.sms_number:
        rows.append((patron.sms_number, "sms"))
    return rows


def _phone_rows(pk: int, patron: Patron) -> list[dict[str, Any]]:
    return [
        {"patron_pk": pk, "position": i, "agency_id": patron.agency_id, "number": n, "kind": k}
        for i, (n, k) in enumerate(_numbers(patron))
    ]


def _json_lines(lines: tuple[str, ...]) -> str:
    """``json.dumps(list(lines))``, the same text, without the encoder's Python layers (an
    import writes two JSON columns per patron)."""
    return "[" + ", ".join(map(_quote, lines)) + "]"


def _json_extra(extra: Mapping[str, Any]) -> str:
    """``json.dumps(dict(extra))`` as ``_json_lines`` does it (text values; others through
    json.dumps)."""
    if not all(type(k) is str and type(v) is str for k, v in extra.items()):
        return json.dumps(dict(extra))
    return "{" + ", ".join(f"{_quote(k)}: {_quote(v)}" for k, v in extra.items()) + "}"


# What the planner needs for the import's own statements: the tables' sizes (every ANALYZE
# counts them) and the columns they filter and join on. Statistics of the other columns would
# cost most of the time for nothing here; an ANALYZE of some columns leaves the table's count
# of changes as it is, so autovacuum still analyses all of them after the commit.
_ANALYZE = (
    "ANALYZE patrons (agency_id, patron_id, source, external_id, status), "
    "patron_phones (patron_pk), import_patron_state (patron_pk)"
)


# Matching a batch: the patron with what its import state says, as plain driver rows.
_KNOWN = (
    "SELECT p.id, p.patron_id, p.source, p.external_id, s.digest, s.missing_runs, s.patron_pk "
    "FROM patrons p LEFT OUTER JOIN import_patron_state s ON s.patron_pk = p.id "
    "WHERE p.agency_id = ? AND "
)


# The source's patrons whose stored digest counts (seen in the last run), in the order of their
# digests: fixed-width lowercase hex, so text order (C collation, SQLite's BINARY) is numeric.
_CLEAN = (
    "SELECT s.digest, p.external_id, p.id "
    "FROM patrons p JOIN import_patron_state s ON s.patron_pk = p.id "
    "WHERE p.agency_id = ? AND p.source = ? AND s.missing_runs = 0 "
    "AND s.digest IS NOT NULL AND p.external_id IS NOT NULL ORDER BY s.digest{collate}"
)


_LOW = (1 << 64) - 1


class Digests:
    """The stored digests of a source's patrons as a run starts: which entries are unchanged.

    ``find`` gives the key of the patron whose digest equals an entry's fingerprint and whose
    external id is the entry's, and whose missing runs are 0: exactly what matching the entry by
    its external id and comparing digests says, with no query per batch. Sorted arrays rather
    than a dict: 32 bytes a patron (a million in 32 MB), looked up by bisection. The external id
    is kept as its ``hash`` (this process's, computed here as the digests load): an external id
    changed since the digest was stored (a patron edited by hand) does not match.
    """

    def __init__(self) -> None:
        self._high = array("Q")
        self._low = array("Q")
        self._external = array("q")
        self._pks = array("q")

    def __len__(self) -> int:
        return len(self._pks)

    def load(self, rows: Iterable[tuple[str, str, int]]) -> None:
        """Append (digest, external id, key) rows in ascending order of digest.

        A digest that is not 32 lowercase hex digits (not one this version wrote) or out of
        order (not expected) is left out: its entry is then matched by external id as before.
        """
        high, low = self._high.append, self._low.append
        external, pks = self._external.append, self._pks.append
        last = -1
        for digest, external_id, pk in rows:
            try:
                value = int(digest, 16)
            except ValueError:
                continue
            if len(digest) != 32 or value < last or digest != digest.lower():
                continue
            last = value
            high(value >> 64)
            low(value & _LOW)
            external(hash(external_id))
            pks(pk)

    def find(self, fingerprint: str, external_id: str) -> int | None:
        """The key of the patron this entry leaves unchanged, or None."""
        if not self._pks or len(fingerprint) != 32:
            return None
        try:
            value = int(fingerprint, 16)
        except ValueError:
            return None
        high, low = value >> 64, value & _LOW
        highs = self._high
        i = bisect_left(highs, high)
        while i < len(highs) and highs[i] == high:
            if self._low[i] == low and self._external[i] == hash(external_id):
                return self._pks[i]
            i += 1
        return None


def _known(row: tuple[Any, ...]) -> Known:
    pk, patron_id, source, external_id, digest, missing_runs, state_pk = row
    return Known(
        pk, patron_id, source, external_id, digest, missing_runs or 0, state_pk is not None
    )


class ImportStore:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._driver = Driver(conn)
        self._postgres = conn.dialect.name == "postgresql"
        among = self._driver.among
        self._by_external_sql = f"{_KNOWN}p.source = ? AND {among('p.external_id')}"
        self._by_patron_id_sql = _KNOWN + among("p.patron_id")
        self._dialect = postgresql if self._postgres else sqlite
        self._created = 0
        self._analyze_at = 1000
        self._sequence: int | None = None  # of patrons.id (PostgreSQL)
        # PostgreSQL: the rows of a create are sent from a background thread, so that the server
        # (another process, another core) inserts one batch while we read and validate the
        # next. Every other method first waits for them (``settle``): the connection is used by
        # one thread at a time, and each lookup sees every earlier write. Not on SQLite: it
        # inserts in our process, and its executemany takes the GIL back for every row.
        self._background = ThreadPoolExecutor(1, "import-writes") if self._postgres else None
        self._writing: Future[None] | None = None

    def writing(self) -> bool:
        """Whether the inserts of the last create are still running."""
        return self._writing is not None and not self._writing.done()

    def settle(self) -> None:
        """Wait for the inserts of the last create; raise what they raised."""
        if self._writing is not None:
            writing, self._writing = self._writing, None
            writing.result()

    def close(self) -> None:
        """Wait for background writes (raising their error) and stop the writer thread."""
        try:
            self.settle()
        finally:
            if self._background is not None:
                self._background.shutdown()

    def _new_keys(self, count: int) -> list[int]:
        """``count`` fresh patron keys, so that inserts need no RETURNING.

        In this thread, not the writer's: a thread that waits for the server must then wait for
        the interpreter's lock too, as long as another thread computes (up to 5 ms a time).
        """
        self.settle()
        if self._postgres:
            if self._sequence is None:
                # Looked up once: as an argument of nextval the lookup would run for every key
                # (seven times the cost of the keys themselves).
                found = "SELECT pg_get_serial_sequence('patrons', 'id')::regclass::oid"
                self._sequence = int(self._driver.rows(found, ())[0][0])
            sql = "SELECT nextval(?::oid::regclass) FROM generate_series(1, ?)"
            return [int(row[0]) for row in self._driver.rows(sql, (self._sequence, count))]
        # SQLite: the transaction began IMMEDIATE and holds the write lock, so no one else
        # can take these keys between this read and the insert.
        top = self._conn.execute(select(func.coalesce(func.max(patrons.c.id), 0))).scalar_one()
        return list(range(int(top) + 1, int(top) + 1 + count))

    def by_external_id(
        self, agency_id: str, source_id: str, ids: Sequence[str]
    ) -> dict[str, Known]:
        """The source's patrons with these external ids."""
        self.settle()
        found: dict[str, Known] = {}
        for start in range(0, len(ids), PAGE):
            page = self._driver.values(ids[start : start + PAGE])
            for row in self._driver.rows(self._by_external_sql, (agency_id, source_id, page)):
                found[row[3]] = _known(row)
        return found

    def digests(self, agency_id: str, source_id: str) -> Digests:
        """The source's stored digests that count (see ``Digests``), streamed in one query."""
        self.settle()
        found = Digests()
        sql = _CLEAN.format(collate=' COLLATE "C"' if self._postgres else "")
        found.load(self._driver.stream(sql, (agency_id, source_id)))
        return found

    def has_patrons(self, agency_id: str, source_id: str) -> bool:
        """Whether any patron, of any status, belongs to the source."""
        self.settle()
        sql = "SELECT 1 FROM patrons WHERE agency_id = ? AND source = ? LIMIT 1"
        return bool(self._driver.rows(sql, (agency_id, source_id)))

    def new_patron_ids(self, agency_id: str, prefix: str, count: int) -> list[str]:
        """``count`` patron ids of the agency's sequence (``prefix`` and a number), none taken.

        The sequence's row is updated inside the run's transaction: a run that rolls back gives
        its numbers back, and a concurrent run of another source waits for this one's commit.
        """
        self.settle()
        dialect = postgresql if self._postgres else sqlite
        self._conn.execute(
            dialect.insert(patron_id_sequences)
            .values(agency_id=agency_id, last_value=0)
            .on_conflict_do_nothing(index_elements=["agency_id"])
        )
        found: list[str] = []
        while len(found) < count:
            wanted = count - len(found)
            top = self._conn.execute(
                update(patron_id_sequences)
                .where(patron_id_sequences.c.agency_id == agency_id)
                .values(last_value=patron_id_sequences.c.last_value + wanted)
                .returning(patron_id_sequences.c.last_value)
            ).scalar_one()
            ids = [f"{prefix}{n}" for n in range(top - wanted + 1, top + 1)]
            # A number staff or a feed gave a patron already is skipped, not reused.
            taken = self.by_patron_id(agency_id, ids)
            found.extend(i for i in ids if i not in taken)
        return found

    def by_patron_id(self, agency_id: str, patron_ids: Sequence[str]) -> dict[str, Known]:
        """The agency's patrons with these patron ids, whatever their source."""
        self.settle()
        found: dict[str, Known] = {}
        for start in range(0, len(patron_ids), PAGE):
            page = self._driver.values(patron_ids[start : start + PAGE])
            for row in self._driver.rows(self._by_patron_id_sql, (agency_id, page)):
                found[row[1]] = _known(row)
        return found

    def load(self, pks: Sequence[int]) -> dict[int, Patron]:
        self.settle()
        repo = PatronRepository(self._conn)
        return dict(repo.many(pks))

    def create(self, new: Sequence[NewPatron], now: dt.datetime) -> list[int]:
        """Insert patrons with their numbers and import state (digest); returns their keys."""
        if not new:
            return []
        pks = self._new_keys(len(new))
        if self._background is not None:
            # The rows are made and sent by the writer thread, while this one reads on.
            self._writing = self._background.submit(self._insert_created, pks, new, now)
        else:
            self._insert_created(pks, new, now)
        return pks

    def _insert_created(self, pks: list[int], new: Sequence[NewPatron], now: dt.datetime) -> None:
        stamp = self._timestamp(now)
        values = self._patron_values
        self._driver.insert(
            "patrons",
            _PATRON_COLUMNS,
            (
                (pk, n.patron.agency_id, *values(n.patron), stamp, stamp)
                for pk, n in zip(pks, new, strict=True)
            ),
            _PATRON_TYPES,
        )
        self._driver.insert(
            "patron_phones",
            _PHONE_COLUMNS,
            (
                (pk, position, n.patron.agency_id, number, kind)
                for pk, n in zip(pks, new, strict=True)
                for position, (number, kind) in enumerate(_numbers(n.patron))
            ),
            _PHONE_TYPES,
        )
        self._driver.insert(
            "import_patron_state",
            _STATE_COLUMNS,
            ((pk, n.digest, 0) for pk, n in zip(pks, new, strict=True)),
            _STATE_TYPES,
        )
        self._created += len(pks)
        self._refresh_statistics()

    def _timestamp(self, now: dt.datetime) -> Any:
        return bind_time(self._conn, now)

    def _patron_values(self, p: Patron) -> tuple[Any, ...]:
        def day(value: dt.date | None) -> Any:
            return value if self._postgres or value is None else value.isoformat()

        return (
            p.patron_id, p.name, p.status.value, day(p.expiry_date), p.email, p.sms_number,
            p.want_sms, _json_lines(p.address_lines), p.zip, day(p.birth_date),
            p.home_branch, p.source, p.external_id, _json_extra(p.extra),
            _json_lines(p.phones_unparsed),
        )  # fmt: skip

    def _refresh_statistics(self) -> None:
        """On PostgreSQL, ANALYZE the tables whenever this run has quadrupled what it created.

        A first import fills empty tables inside one transaction; with the statistics of the
        empty table the planner filters the whole source for every batch's lookup instead of
        using the index (a thousand times slower at 30,000 patrons). ANALYZE counts the rows
        the transaction itself inserted. Growing by a factor keeps the total cost linear; the
        planner scales the row counts it saw by the tables' current sizes in between.
        """
        if not self._postgres or self._created < self._analyze_at:
            return
        self._driver.rows(_ANALYZE, ())
        self._analyze_at = self._created * 4

    def update(self, changed: Sequence[tuple[int, Patron]], now: dt.datetime) -> None:
        """Rewrite these patrons (all imported columns) and their numbers."""
        self.settle()
        if not changed:
            return
        self._conn.execute(
            update(patrons)
            .where(patrons.c.id == bindparam("pk"))
            .values({name: bindparam(name) for name in (*_columns(changed[0][1]), "updated_at")}),
            [{"pk": pk, "updated_at": now, **_columns(p)} for pk, p in changed],
        )
        pks = [pk for pk, _ in changed]
        for start in range(0, len(pks), PAGE):
            page = pks[start : start + PAGE]
            self._conn.execute(delete(patron_phones).where(patron_phones.c.patron_pk.in_(page)))
        phones = [row for pk, p in changed for row in _phone_rows(pk, p)]
        if phones:
            self._conn.execute(insert(patron_phones), phones)

    def set_state(self, states: Iterable[PatronState]) -> None:
        """Upsert the import state of each patron given."""
        self.settle()
        rows = [
            {"patron_pk": s.pk, "digest": s.digest, "missing_runs": s.missing_runs} for s in states
        ]
        if not rows:
            return
        stmt = self._dialect.insert(import_patron_state)
        self._conn.execute(
            stmt.on_conflict_do_update(
                index_elements=["patron_pk"],
                set_={"digest": stmt.excluded.digest, "missing_runs": stmt.excluded.missing_runs},
            ),
            rows,
        )

    def population(self, agency_id: str, source_id: str) -> Iterator[tuple[int, int]]:
        """(key, consecutive missing runs) of the source's patrons that are not inactive."""
        self.settle()
        sql = (
            "SELECT p.id, s.missing_runs FROM patrons p "
            "LEFT OUTER JOIN import_patron_state s ON s.patron_pk = p.id "
            "WHERE p.agency_id = ? AND p.source = ? AND p.status != ?"
        )
        inactive = PatronStatus.INACTIVE.value
        for pk, runs in self._driver.stream(sql, (agency_id, source_id, inactive)):
            yield int(pk), int(runs or 0)

    def count_missing(self, missing: Mapping[int, int]) -> None:
        """Store each missing patron's new count of consecutive runs without it.

        Its digest is cleared too (``set_state`` writes both). That costs nothing: a digest
        counts only while the count is 0, so a patron that comes back is compared field by field.
        """
        self.set_state(
            PatronState(pk=pk, digest=None, missing_runs=runs) for pk, runs in missing.items()
        )

    def deactivate(self, pks: Sequence[int], now: dt.datetime) -> None:
        self.settle()
        if pks:
            self._conn.execute(
                update(patrons)
                .where(patrons.c.id == bindparam("pk"))
                .values(status=PatronStatus.INACTIVE.value, updated_at=now),
                [{"pk": pk} for pk in pks],
            )
