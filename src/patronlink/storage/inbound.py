"""The inbound SMS log."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Connection, bindparam, insert, literal, select, text

from patronlink.storage.tables import inbound_sms

# Built once (they run on every inbound request). The dedupe lookup is one probe of the index
# on (agency_id, number, text, received_at): however often one number texts, it does not scan
# that number's other recent messages.
_SEEN_RECENTLY = (
    select(literal(1))
    .where(
        inbound_sms.c.agency_id == bindparam("agency_id"),
        inbound_sms.c.number == bindparam("number"),
        inbound_sms.c.text == bindparam("body"),
        inbound_sms.c.received_at >= bindparam("since", type_=inbound_sms.c.received_at.type),
        inbound_sms.c.outcome != "duplicate",
    )
    .limit(1)
)
_ADD = insert(inbound_sms).returning(inbound_sms.c.id)


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
        params = {"agency_id": agency_id, "number": number, "body": body, "since": since}
        return self._conn.execute(_SEEN_RECENTLY, params).first() is not None

    def add(self, **row: Any) -> int:
        return int(self._conn.execute(_ADD, row).scalar_one())

    def search(
        self, agency_id: str, *, number: str | None = None, limit: int = 100, offset: int = 0
    ) -> list[dict[str, Any]]:
        stmt = select(inbound_sms).where(inbound_sms.c.agency_id == agency_id)
        if number is not None:
            stmt = stmt.where(inbound_sms.c.number == number)
        stmt = stmt.order_by(inbound_sms.c.id.desc()).limit(limit).offset(offset)
        return [dict(r) for r in self._conn.execute(stmt).mappings()]
