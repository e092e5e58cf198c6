"""The inbound SMS log."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Connection, func, insert, select, text

from patronlink.storage.tables import inbound_sms


class InboundRepository:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def serialise_number(self, agency_id: str, number: str) -> None:
        """Hold a transaction-long lock on one sender number (PostgreSQL; SQLite is serial)."""
        if self._conn.dialect.name == "postgresql":
            self._conn.execute(
                text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"),
                {"key": f"inbound:{agency_id}:{number}"},
            )

    def seen_recently(self, agency_id: str, number: str, body: str, since: dt.datetime) -> bool:
        stmt = select(func.count()).where(
            inbound_sms.c.agency_id == agency_id,
            inbound_sms.c.number == number,
            inbound_sms.c.text == body,
            inbound_sms.c.received_at >= since,
            inbound_sms.c.outcome != "duplicate",
        )
        return int(self._conn.execute(stmt).scalar_one()) > 0

    def add(self, **row: Any) -> int:
        return int(
            self._conn.execute(
                insert(inbound_sms).values(**row).returning(inbound_sms.c.id)
            ).scalar_one()
        )

    def search(
        self, agency_id: str, *, number: str | None = None, limit: int = 100, offset: int = 0
    ) -> list[dict[str, Any]]:
        stmt = select(inbound_sms).where(inbound_sms.c.agency_id == agency_id)
        if number is not None:
            stmt = stmt.where(inbound_sms.c.number == number)
        stmt = stmt.order_by(inbound_sms.c.id.desc()).limit(limit).offset(offset)
        return [dict(r) for r in self._conn.execute(stmt).mappings()]
