"""The outbox table: queueing, the claim with a lease, batched outcomes, and the staff views."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, and_, case, func, insert, or_, select, update

from patronlink.domain.delivery import FINAL, Delivery, Report
from patronlink.domain.dispatch import GIVES_BACK_ATTEMPT, ClaimedMessage, Outcome
from patronlink.domain.outbox import MessageStatus
from patronlink.storage.raw import bind_time, utc
from patronlink.storage.raw_driver import Driver
from patronlink.storage.tables import PAUSE_EVERYWHERE, message_attempts, messages


@dataclass(frozen=True, slots=True)
class NewMessage:
    agency_id: str
    to_number: str
    text: str
    encoding: str
    segments: int
    origin: str
    send_at: dt.datetime
    # When the dispatcher may pick it up: send_at, or now for a gateway that schedules itself.
    next_attempt_at: dt.datetime | None = None


# The default of ``claim``'s ``stale_before``: no text is that old.
NEVER_STALE = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


@dataclass(frozen=True, slots=True)
class MessageFilter:
    agency_id: str | None = None
    statuses: tuple[MessageStatus, ...] = ()
    to_number: str | None = None
    code: str | None = None
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    ids: tuple[int, ...] = ()
    deliveries: tuple[str, ...] = ()


# The claim on PostgreSQL, as one visible statement, run twice: first for texts whose lease
# expired (a worker died while sending them), then for queued texts that are due. Each half walks
# its own index in order and stops at the limit; one statement with an OR would collect every due
# text and sort. Rows locked by another worker's claim are skipped rather than waited for.
# Both backends mark a claimed text the same way (values: lease, owner, now).
_CLAIM_SET = """
UPDATE messages
   SET status = 'sending', lease_until = ?, lease_owner = ?, attempts = attempts + 1,
       updated_at = ?"""
#
# Paused sending (``sms_pauses``: agencies, or '*' for all): the claim first reads the pauses
# (a handful of rows at most, usually none). With none, the claim is the statement as it was;
# with '*', there is nothing to claim; with agencies paused, the claim skips their texts, which
# stay queued with no lease. Filtering in every claim instead cost PostgreSQL a test for each due
# row it reads (the plan reads every due text and sorts): with 20,000 due, medians of 49 -> 55
# ms a claim; read first, 35.6 -> 35.3 ms (noise).
# ``stale`` marks a text claimed for the first time more than the maximum age after its send
# time (values: the oldest send time still sent); the dispatcher puts it on the error queue
# instead of sending it. It is computed only for the rows returned. "For the first time": its
# first attempt and no outcome recorded yet (no driver): a held text gives its attempt back,
# and was not found too old when it was first claimed.
_PAUSES = "SELECT scope FROM sms_pauses"
_NOT_PAUSED = "AND agency_id NOT IN (SELECT scope FROM sms_pauses)"
_CLAIM = (
    _CLAIM_SET  # noqa: S608 - our own text
    + """
 WHERE id IN (
       SELECT id FROM messages
        WHERE {due} {not_paused}
        ORDER BY {order}
        LIMIT ?
        {lock})
RETURNING id, agency_id, to_number, text, attempts, send_at,
          (attempts = 1 AND driver IS NULL AND send_at < ?)
"""
)
_EXPIRED = {"due": "status = 'sending' AND lease_until < ?", "order": "lease_until, id"}
_QUEUED = {"due": "status = 'queued' AND next_attempt_at <= ?", "order": "next_attempt_at, id"}
CLAIM_POSTGRESQL = tuple(
    _CLAIM.format(lock="FOR UPDATE SKIP LOCKED", not_paused="", **part)
    for part in (_EXPIRED, _QUEUED)
)
CLAIM_POSTGRESQL_SOME_PAUSED = tuple(
    _CLAIM.format(lock="FOR UPDATE SKIP LOCKED", not_paused=_NOT_PAUSED, **part)
    for part in (_EXPIRED, _QUEUED)
)
# SQLite: the same two halves, each as a read of the due texts into one JSON value and an UPDATE
# of those ids. A RETURNING row is one step of the statement, and every step gives the
# interpreter's lock back to the busy event loop and waits to get it again; this is two steps.
_CLAIM_SQLITE_PICK = """
SELECT json_group_array(json_array(id, agency_id, to_number, text, attempts + 1, send_at,
                                   attempts = 0 AND driver IS NULL AND send_at < ?))
  FROM (SELECT id, agency_id, to_number, text, attempts, send_at, driver FROM messages
         WHERE {due} {not_paused}
         ORDER BY {order}
         LIMIT ?)
"""
CLAIM_SQLITE = tuple(
    _CLAIM_SQLITE_PICK.format(not_paused="", **part) for part in (_EXPIRED, _QUEUED)
)
CLAIM_SQLITE_SOME_PAUSED = tuple(
    _CLAIM_SQLITE_PICK.format(not_paused=_NOT_PAUSED, **part) for part in (_EXPIRED, _QUEUED)
)
CLAIM_SQLITE_MARK = _CLAIM_SET + "\n WHERE id IN (SELECT value FROM json_each(?))\n"  # noqa: S608 - our own text


# An outcome batch: the message leaves 'sending' only if this worker still holds its lease.
# The batch goes to the database as one JSON value, rows of ``_BATCH_COLUMNS``, and is applied by
# one UPDATE and one INSERT.
_BATCH_COLUMNS = (
    "message_id", "status", "next_attempt_at", "driver", "http_status", "code", "description",
    "gateway_message_id", "buffered", "started_at", "finished_at", "sent_at", "outcome",
    "delivery",
)  # fmt: skip
_BATCH_TYPES = (
    "bigint", "text", "timestamptz", "text", "integer", "text", "text", "text", "boolean",
    "timestamptz", "timestamptz", "timestamptz", "text", "text",
)  # fmt: skip
# What an outcome row ``o`` does to its message ``m``, and its attempt's row, on both backends.
# A held attempt (``GIVES_BACK_ATTEMPT``) is recorded, and the count the claim added taken back.
_GIVEN_BACK = ", ".join(f"'{kind.value}'" for kind in sorted(GIVES_BACK_ATTEMPT))
_OUTCOME_SET = f"""
UPDATE messages AS m
   SET status = o.status, next_attempt_at = COALESCE(o.next_attempt_at, m.next_attempt_at),
       attempts = m.attempts - CASE WHEN o.outcome IN ({_GIVEN_BACK}) THEN 1 ELSE 0 END,
       lease_until = NULL, lease_owner = NULL, driver = o.driver,
       last_http_status = o.http_status, last_code = o.code, last_description = o.description,
       gateway_message_id = o.gateway_message_id, buffered = o.buffered, sent_at = o.sent_at,
       updated_at = o.finished_at,
       delivery = CASE WHEN m.delivery = 'none' THEN o.delivery ELSE m.delivery END"""  # noqa: S608 - our own names
# (A delivery report may come before its send's outcome is recorded: it is kept, see
# ``patronlink.domain.delivery.after_send``.)
_ATTEMPT_INSERT = """
INSERT INTO message_attempts
       (message_id, started_at, finished_at, driver, outcome, http_status, code, description,
        worker)
SELECT message_id, started_at, finished_at, driver, outcome, http_status, code, description, ?"""
# PostgreSQL: one statement (one round trip; under load each waits milliseconds for the busy
# interpreter's lock on its way back), the UPDATE and the INSERT as two WITH clauses over the
# batch. The messages are found by their ids given as an array, so the plan is a primary key
# lookup whatever the row estimate of the JSON. The status test is written so that no index can
# serve it: an index on status, walked instead, also walks the entries of every row that was
# once 'sending' and not yet vacuumed (91 ms a batch of 250 by the end of a 20,000-text run).
_PG_BATCH = ",\n            ".join(
    f"(e ->> {i})::{t} AS {c}"
    for i, (c, t) in enumerate(zip(_BATCH_COLUMNS, _BATCH_TYPES, strict=True))
)
_RECORD_BATCH = f"""
WITH o AS MATERIALIZED (
     SELECT {_PG_BATCH}
       FROM json_array_elements(?::json) AS e),
held AS ({_OUTCOME_SET}
  FROM o
 WHERE m.id = ANY(?::bigint[]) AND m.id = o.message_id AND m.lease_owner = ?
   AND (m.status = 'sending') IS TRUE
RETURNING m.id),
logged AS ({_ATTEMPT_INSERT}
  FROM o)
SELECT count(*) FROM held
"""  # noqa: S608 - our own names
# SQLite reads the JSON with json_each (in C). Not a WITH clause: Python's sqlite3 counts the
# rows changed only by a statement that starts with UPDATE. The unary + keeps the status index
# out of the plan, as on PostgreSQL: the batch is the outer loop and each message is found by id.
_SQLITE_BATCH = ",\n       ".join(
    f"value ->> {i} AS {name}" for i, name in enumerate(_BATCH_COLUMNS)
)
_RECORD_BATCH_SQLITE = f"""{_OUTCOME_SET}
  FROM (SELECT {_SQLITE_BATCH} FROM json_each(?)) AS o
 WHERE m.id = o.message_id AND m.lease_owner = ? AND +m.status = 'sending'
"""  # noqa: S608 - our own names
_RECORD_BATCH_ATTEMPTS_SQLITE = f"""{_ATTEMPT_INSERT}
  FROM (SELECT {_SQLITE_BATCH} FROM json_each(?))
"""  # noqa: S608 - our own names


# Delivery reports (``apply_reports``): the texts a batch names, locked and read, and one UPDATE
# from the batch's rows (id, delivery, code, description, delivered_at or null). The UPDATE
# keeps the guard that a final state is never left, as a second line behind the reading. Each
# text is found by its primary key: the agency and delivery tests are written so that no index
# serves them (``IS TRUE`` on PostgreSQL, the unary + on SQLite). With the statistics of a table
# just filled, PostgreSQL otherwise walked the agency's delivery index, every text of the agency
# (12 ms a batch of 15 among 20,000 texts, against well under 1 ms by id).
_FINAL_STATES = ", ".join(f"'{state.value}'" for state in sorted(FINAL, key=lambda s: s.value))
_REPORT_SET = """
UPDATE messages AS m
   SET delivery = r.delivery, delivery_code = r.code, delivery_description = r.description,
       delivered_at = COALESCE(r.delivered_at, m.delivered_at), updated_at = ?"""
# PostgreSQL: one statement. The texts are locked in id order (two batches never wait on each
# other in a cycle) and read, and the reports are written to those that were not final. The rows
# come as arrays, one a column, and are joined to the texts by the primary key (a JSON array
# joined that way was parsed again for every text: 32 x 32 elements for a batch of 32). The
# SELECT answers with the texts as they were before the batch.
_REPORT_APPLY = f"""
WITH pre AS (
  SELECT id, delivery IN ({_FINAL_STATES}) AS final FROM messages
   WHERE id = ANY(?::bigint[]) AND (agency_id = ?) IS TRUE
   ORDER BY id
     FOR UPDATE),
r AS (
  SELECT * FROM unnest(?::bigint[], ?::text[], ?::text[], ?::text[], ?::timestamptz[])
      AS r (id, delivery, code, description, delivered_at)),
w AS ({_REPORT_SET}
    FROM r JOIN pre ON pre.id = r.id AND NOT pre.final
   WHERE m.id = r.id AND (m.delivery NOT IN ({_FINAL_STATES})) IS TRUE)
SELECT id, final FROM pre
"""  # noqa: S608 - our own names
_REPORT_LOCK_SQLITE = f"""
SELECT json_group_array(json_array(id, delivery IN ({_FINAL_STATES}))) FROM messages
 WHERE id IN (SELECT value FROM json_each(?)) AND +agency_id = ?
"""  # noqa: S608 - our own names
_REPORT_WRITE_SQLITE = f"""{_REPORT_SET}
  FROM (SELECT value ->> 0 AS id, value ->> 1 AS delivery, value ->> 2 AS code,
               value ->> 3 AS description, value ->> 4 AS delivered_at
          FROM json_each(?)) AS r
 WHERE m.id = r.id AND +m.agency_id = ? AND +m.delivery NOT IN ({_FINAL_STATES})
"""  # noqa: S608 - our own names


# Renewal by SMS queues a reply or two on every request: those go one by one on the driver
# itself; larger batches (staff, benchmarks) use SQLAlchemy's multi-row insert.
_ENQUEUE_COLUMNS = (
    "agency_id", "to_number", "text", "encoding", "segments", "status", "origin", "send_at",
    "next_attempt_at", "attempts", "buffered", "created_at", "updated_at",
)  # fmt: skip
_ENQUEUE_TIMES = frozenset({"send_at", "next_attempt_at", "created_at", "updated_at"})
_ENQUEUE_ONE = (
    f"INSERT INTO messages ({', '.join(_ENQUEUE_COLUMNS)}) "  # noqa: S608 - our own names
    f"VALUES ({', '.join('?' for _ in _ENQUEUE_COLUMNS)}) RETURNING id"
)
_ENQUEUE_ONE_BY_ONE = 4
_ENQUEUE_MANY = insert(messages).returning(messages.c.id, sort_by_parameter_order=True)


def _fit(value: str | None, length: int) -> str | None:
    """A gateway's text as its column can hold it: a reply with a NUL or a message id longer
    than the column must not fail the batch (and with it every outcome in it)."""
    if value is None:
        return None
    return value.replace("\x00", "")[:length]


class OutboxRepository:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def enqueue(self, new: Sequence[NewMessage], now: dt.datetime) -> list[int]:
        if not new:
            return []
        rows = [
            {
                "agency_id": m.agency_id,
                "to_number": m.to_number,
                "text": m.text,
                "encoding": m.encoding,
                "segments": m.segments,
                "status": MessageStatus.QUEUED.value,
                "origin": m.origin,
                "send_at": m.send_at,
                "next_attempt_at": m.next_attempt_at or m.send_at,
                "attempts": 0,
                "buffered": False,
                "created_at": now,
                "updated_at": now,
            }
            for m in new
        ]
        if len(rows) <= _ENQUEUE_ONE_BY_ONE:
            driver = Driver(self._conn)
            return [int(driver.rows(_ENQUEUE_ONE, self._driver_values(row))[0][0]) for row in rows]
        result = self._conn.execute(_ENQUEUE_MANY, rows)
        return [int(r) for r in result.scalars()]

    def _driver_values(self, row: dict[str, Any]) -> tuple[Any, ...]:
        """A row for ``_ENQUEUE_ONE``, its times as ``UTCDateTime`` would bind them."""
        return tuple(
            bind_time(self._conn, row[c]) if c in _ENQUEUE_TIMES else row[c]
            for c in _ENQUEUE_COLUMNS
        )

    def claim(
        self,
        now: dt.datetime,
        lease_until: dt.datetime,
        owner: str,
        limit: int,
        stale_before: dt.datetime = NEVER_STALE,
    ) -> list[ClaimedMessage]:
        """Take up to ``limit`` due texts of agencies not paused, leased to ``owner``.

        A text claimed for the first time whose send time is before ``stale_before`` comes back
        with ``stale`` set.
        """
        at, lease = bind_time(self._conn, now), bind_time(self._conn, lease_until)
        oldest = bind_time(self._conn, stale_before)
        rows: list[Any] = []
        # On the driver itself: up to hundreds of rows a claim, and SQLAlchemy's row processing
        # ran in the thread that the dispatcher's event loop waits on for the GIL.
        driver = Driver(self._conn)
        paused = {scope for (scope,) in driver.rows(_PAUSES, ())}
        if PAUSE_EVERYWHERE in paused:
            return []
        if driver.postgres:
            claims = CLAIM_POSTGRESQL_SOME_PAUSED if paused else CLAIM_POSTGRESQL
        else:
            claims = CLAIM_SQLITE_SOME_PAUSED if paused else CLAIM_SQLITE
        for half in range(2):
            if len(rows) >= limit:
                break
            if driver.postgres:
                values = (lease, owner, at, at, limit - len(rows), oldest)
                rows += driver.rows(claims[half], values)
                continue
            # BEGIN IMMEDIATE holds the database: nothing changes between the read and the mark.
            pick = (oldest, at, limit - len(rows))
            picked = json.loads(driver.rows(claims[half], pick)[0][0])
            if picked:
                ids = json.dumps([row[0] for row in picked])
                driver.rows(CLAIM_SQLITE_MARK, (lease, owner, at, ids))
                rows += map(tuple, picked)
        rows.sort()  # by id: neither RETURNING nor the JSON array has an order of its own
        return [
            ClaimedMessage(
                id=int(id_),
                agency_id=agency_id,
                to_number=to_number,
                text=body,
                attempts=int(attempts),
                send_at=utc(send_at),
                stale=bool(stale),
            )
            for id_, agency_id, to_number, body, attempts, send_at, stale in rows
        ]

    def record(self, outcomes: Sequence[Outcome], owner: str) -> int:
        """Store a batch of outcomes; returns how many messages this worker still held.

        A message whose lease expired and was claimed by another worker meanwhile is not
        overwritten (its attempt is still recorded). The batch goes to the database whole, as
        one JSON value (made in C), and is applied by one UPDATE and one INSERT: a statement per
        outcome cost ~50 µs of Python a text on PostgreSQL, and on SQLite every row's step gave
        the interpreter's lock back to the busy event loop and waited to get it again
        (``bench/dispatch.py``).
        """
        if not outcomes:
            return 0
        driver = Driver(self._conn)
        batch = json.dumps([self._batch_row(o) for o in outcomes])
        if driver.postgres:
            ids = [o.message_id for o in outcomes]
            return int(driver.rows(_RECORD_BATCH, (batch, ids, owner, owner))[0][0])
        held = driver.rowcount(_RECORD_BATCH_SQLITE, (batch, owner))
        driver.rows(_RECORD_BATCH_ATTEMPTS_SQLITE, (owner, batch))
        return held

    def _batch_row(self, o: Outcome) -> tuple[Any, ...]:
        """An outcome as a row of ``_BATCH_COLUMNS``, for JSON."""
        when = self._json_time
        return (
            o.message_id,
            o.status.value,
            None if o.next_attempt_at is None else when(o.next_attempt_at),
            _fit(o.driver, 16),
            o.http_status,
            _fit(o.code, 32),
            _fit(o.description, 2000),
            _fit(o.gateway_message_id, 128),
            o.buffered,
            when(o.started_at),
            when(o.finished_at),
            when(o.finished_at) if o.status is MessageStatus.SENT else None,
            o.attempt_outcome,
            o.delivery if o.status is MessageStatus.SENT else "none",
        )

    def _json_time(self, value: dt.datetime) -> str:
        """A time as JSON text: SQLite's stored text, or ISO 8601 with its offset for a
        timestamptz."""
        bound = bind_time(self._conn, value)
        return bound if isinstance(bound, str) else bound.isoformat()

    # Staff views --------------------------------------------------------------------------
    def _conditions(self, f: MessageFilter) -> list[Any]:
        conds: list[Any] = []
        if f.agency_id is not None:
            conds.append(messages.c.agency_id == f.agency_id)
        if f.statuses:
            conds.append(messages.c.status.in_([s.value for s in f.statuses]))
        if f.to_number is not None:
            conds.append(messages.c.to_number == f.to_number)
        if f.code is not None:
            conds.append(messages.c.last_code == f.code)
        if f.since is not None:
            conds.append(messages.c.created_at >= f.since)
        if f.until is not None:
            conds.append(messages.c.created_at < f.until)
        if f.ids:
            conds.append(messages.c.id.in_(f.ids))
        if f.deliveries:
            conds.append(messages.c.delivery.in_(f.deliveries))
        return conds

    def search(
        self, f: MessageFilter, *, limit: int = 100, offset: int = 0
    ) -> list[dict[str, Any]]:
        stmt = (
            select(messages)
            .where(and_(True, *self._conditions(f)))
            .order_by(messages.c.id.desc())
            .limit(limit)
            .offset(offset)
        )
        return [dict(r) for r in self._conn.execute(stmt).mappings()]

    def count(self, f: MessageFilter) -> int:
        """How many messages match ``f`` (the total beside a page of ``search``)."""
        stmt = select(func.count()).select_from(messages).where(and_(True, *self._conditions(f)))
        return int(self._conn.execute(stmt).scalar_one())

    def get(self, message_id: int) -> dict[str, Any] | None:
        row = self._conn.execute(select(messages).where(messages.c.id == message_id)).mappings()
        found = row.first()
        return None if found is None else dict(found)

    def attempts(self, message_id: int) -> list[dict[str, Any]]:
        stmt = (
            select(message_attempts)
            .where(message_attempts.c.message_id == message_id)
            .order_by(message_attempts.c.id)
        )
        return [dict(r) for r in self._conn.execute(stmt).mappings()]

    def move(
        self,
        f: MessageFilter,
        from_statuses: frozenset[MessageStatus],
        to: MessageStatus,
        now: dt.datetime,
    ) -> list[int]:
        """Move every message matching ``f`` that is in ``from_statuses``; returns their ids."""
        movable: Any = messages.c.status.in_([s.value for s in from_statuses])
        if to in (MessageStatus.QUEUED, MessageStatus.CANCELLED):
            # A sent text that the operator failed to deliver is on the error queue too: staff
            # send it again or dismiss it (``patronlink.domain.outbox.UNDELIVERED_MOVES``).
            movable = or_(
                movable,
                and_(
                    messages.c.status == MessageStatus.SENT.value,
                    messages.c.delivery == Delivery.FAILED.value,
                ),
            )
        conds = [*self._conditions(f), movable]
        values: dict[str, Any] = {"status": to.value, "updated_at": now}
        if to is MessageStatus.QUEUED:
            # A staff retry gives the message a fresh round of attempts, due now, and a fresh
            # delivery state (the failed report stays in the attempts' history via last_*). A
            # send time gone by becomes now, so that a text put on the error queue for its age
            # (or one old on the queue) is sent when staff ask for it rather than found stale again.
            send_at = case((messages.c.send_at < now, now), else_=messages.c.send_at)
            values.update(
                next_attempt_at=now,
                attempts=0,
                send_at=send_at,
                delivery=Delivery.NONE.value,
                delivery_code=None,
                delivery_description=None,
                delivered_at=None,
            )
        result = self._conn.execute(
            update(messages).where(*conds).values(**values).returning(messages.c.id)
        )
        return sorted(int(r) for r in result.scalars())

    def apply_report(self, agency_id: str, report: Report, now: dt.datetime) -> str:
        """Record one delivery report on the agency's text; what became of it:

        ``applied``; ``ignored`` (the text is in a final state already: a duplicate, or a late
        intermediate report); ``unknown`` (no such text of this agency). A final state is never
        overwritten, whatever order concurrent reports commit in (``apply_reports``).
        """
        return self.apply_reports(agency_id, [report], now)[0]

    def apply_reports(
        self, agency_id: str, reports: Sequence[Report], now: dt.datetime
    ) -> list[str]:
        """Record the agency's reports as if one after the other, in the order given; what
        became of each (``applied``, ``ignored``, ``unknown``, as ``apply_report``).

        The texts' rows are locked and read (``FOR UPDATE`` in id order on PostgreSQL; SQLite's
        ``BEGIN IMMEDIATE`` holds the database already), and the last report that applies to
        each text is written, still guarded so that it never leaves a final state. Which report
        that is does not depend on the text's state: reports apply up to the first final one,
        and a text already final takes none of them. So on PostgreSQL the lock, the read and the
        write are one statement (one round trip a batch, which under load is also one wait less
        for the interpreter's lock); on SQLite, in-process, two. A statement per report cost
        SQLAlchemy's ~30 µs of Python each and, on SQLite, gave the interpreter's lock back to
        the busy event loop at every step (``bench/dlr.py``).
        """
        out = ["unknown"] * len(reports)
        ids = sorted({r.message_id for r in reports if r.message_id is not None})
        if not ids:
            return out
        last: dict[int, Report] = {}  # the report each text ends with, unless it is final already
        for report in reports:
            message_id = report.message_id
            if message_id is None:
                continue
            before = last.get(message_id)
            if before is None or before.state not in FINAL:
                last[message_id] = report
        written = sorted(last.items())
        driver = Driver(self._conn)
        at = bind_time(self._conn, now)
        if driver.postgres:
            rows = [self._report_row(i, r, now) for i, r in written]
            columns = [list(column) for column in zip(*rows, strict=True)]  # one array a column
            found = driver.rows(_REPORT_APPLY, (ids, agency_id, *columns, at))
        else:
            found = json.loads(driver.rows(_REPORT_LOCK_SQLITE, (json.dumps(ids), agency_id))[0][0])
            if found:  # the write's own guard passes over texts already final
                as_json = json.dumps([self._report_row(i, r, now) for i, r in written])
                driver.rowcount(_REPORT_WRITE_SQLITE, (at, as_json, agency_id))
        final = {int(i): bool(f) for i, f in found}  # the texts that exist: in a final state?
        for n, report in enumerate(reports):
            message_id = report.message_id
            if message_id is None or message_id not in final:
                continue
            if final[message_id]:
                out[n] = "ignored"
                continue
            out[n] = "applied"
            final[message_id] = report.state in FINAL
        return out

    def _report_row(
        self, message_id: int, r: Report, now: dt.datetime
    ) -> tuple[int, str, str | None, str | None, Any]:
        """What the write sets on a text: its id, state, code, description and, for a final
        state, when it was reached (``bind_time``'s value: text on SQLite)."""
        at = bind_time(self._conn, r.at or now) if r.state in FINAL else None
        return (message_id, r.state.value, _fit(r.code, 32), _fit(r.description, 2000), at)

    def delivery_counts(self) -> dict[tuple[str, str], int]:
        """Sent texts by (agency, delivery state), for the share delivered per agency."""
        stmt = (
            select(messages.c.agency_id, messages.c.delivery, func.count())
            .where(messages.c.status == MessageStatus.SENT.value)
            .group_by(messages.c.agency_id, messages.c.delivery)
        )
        return {(a, d): int(n) for a, d, n in self._conn.execute(stmt).all()}

    def counts_by_status(self, agency_id: str | None = None) -> dict[str, int]:
        stmt = select(messages.c.status, func.count()).group_by(messages.c.status)
        if agency_id is not None:
            stmt = stmt.where(messages.c.agency_id == agency_id)
        return {status: int(n) for status, n in self._conn.execute(stmt).all()}

    def due_count(self, now: dt.datetime) -> int:
        stmt = select(func.count()).where(
            messages.c.status == MessageStatus.QUEUED.value, messages.c.next_attempt_at <= now
        )
        return int(self._conn.execute(stmt).scalar_one())

    def release(self, message_ids: Sequence[int], owner: str) -> int:
        """Give back claimed texts that were never sent: queued again, lease cleared, the
        attempt the claim counted taken back. Only texts this worker still holds; returns how
        many. A worker on its way out calls this so that the texts go out from another worker
        now, not after their lease."""
        if not message_ids:
            return 0
        result = self._conn.execute(
            update(messages)
            .where(
                messages.c.id.in_(list(message_ids)),
                messages.c.lease_owner == owner,
                messages.c.status == MessageStatus.SENDING.value,
            )
            .values(
                status=MessageStatus.QUEUED.value,
                lease_until=None,
                lease_owner=None,
                attempts=messages.c.attempts - 1,
            )
        )
        return int(result.rowcount)

    def due_by_agency(self, now: dt.datetime) -> dict[str, tuple[int, dt.datetime]]:
        """Queued texts due at ``now`` by agency: how many, and the oldest due time."""
        stmt = (
            select(messages.c.agency_id, func.count(), func.min(messages.c.next_attempt_at))
            .where(
                messages.c.status == MessageStatus.QUEUED.value,
                messages.c.next_attempt_at <= now,
            )
            .group_by(messages.c.agency_id)
        )
        return {
            str(agency): (int(n), utc(oldest)) for agency, n, oldest in self._conn.execute(stmt)
        }
