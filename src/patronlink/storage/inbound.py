"""The inbound SMS log."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Connection, func, select, text

from patronlink.storage.raw import bind_json, bind_time
from patronlink.storage.raw_driver import Driver
from patronlink.storage.tables import inbound_sms

# Run on every inbound request, on the driver itself (``raw_driver.Driver``). The dedupe
# lookup is one probe of the index on (agency_id, number, text, received_at): however often one
# number texts, it does not scan that number's other recent messages.
_SEEN_RECENTLY = (
    "SELECT 1 FROM inbound_sms WHERE agency_id = ? AND number = ? AND text = ? "
    "AND received_at >= ? AND outcome <> 'duplicate' LIMIT 1"
)
_ADD = (
    "INSERT INTO inbound_sms (agency_id, received_at, number, shortcode, text, command, "
    "patrons_matched, outcome, renewed, refused, replies) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id"
)


class InboundRepository:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._locked: set[str] = set()  # this transaction's number locks

    def serialise_number(self, agency_id: str, number: str) -> None:
        """Hold a transaction-long lock on one sender number (PostgreSQL; SQLite is serial)."""
        key = f"inbound:{agency_id}:{number}"
        if self._conn.dialect.name == "postgresql" and key not in self._locked:
            self._conn.execute(
                text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"), {"key": key}
            )
            self._locked.add(key)

    def seen_recently(self, agency_id: str, number: str, body: str, since: dt.datetime) -> bool:
        params = (agency_id, number, body, bind_time(self._conn, since))
        return bool(Driver(self._conn).rows(_SEEN_RECENTLY, params))

    def add(
        self,
        *,
        agency_id: str,
        received_at: dt.datetime,
        number: str,
        shortcode: str,
        text: str,
        command: str | None,
        patrons_matched: list[str],
        outcome: str,
        renewed: int,
        refused: int,
        replies: list[int],
    ) -> int:
        row = (
            agency_id,
            bind_time(self._conn, received_at),
            number,
            shortcode,
            text,
            command,
            bind_json(patrons_matched),
            outcome,
            renewed,
            refused,
            bind_json(replies),
        )
        return int(Driver(self._conn).rows(_ADD, row)[0][0])

    def count(self, agency_id: str | None, *, number: str | None = None) -> int:
        """How many ``search`` finds with no limit (``agency_id`` None: every agency)."""
        stmt = select(func.count()).select_from(inbound_sms)
        if agency_id is not None:
            stmt = stmt.where(inbound_sms.c.agency_id == agency_id)
        if number is not None:
            stmt = stmt.where(inbound_sms.c.number == number)
        return int(self._conn.execute(stmt).scalar_one())

    def search(
        self,
        agency_id: str | None,
        *,
        number: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[dict[str, Any]]:
        stmt = select(inbound_sms)
        if agency_id is not None:
            stmt = stmt.where(inbound_sms.c.agency_id == agency_id)
        if number is not None:
            stmt = stmt.where(inbound_sms.c.number == number)
        stmt = stmt.order_by(inbound_sms.c.id.desc()).limit(limit).offset(offset)
        return [dict(r) for r in self._conn.execute(stmt).mappings()]
