"""The inbound SMS log."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Connection, select, text

from patronlink.storage.raw import RawStatement, bind_json, bind_time
from patronlink.storage.tables import inbound_sms

# Run on every inbound request, straight on the driver's cursor (``storage/raw.py``). The dedupe
# lookup is one probe of the index on (agency_id, number, text, received_at): however often one
# number texts, it does not scan that number's other recent messages.
_SEEN_RECENTLY = RawStatement(
    """
SELECT 1 FROM inbound_sms
 WHERE agency_id = :agency_id AND number = :number AND text = :body
   AND received_at >= :since AND outcome <> 'duplicate'
 LIMIT 1
"""
)
_ADD = RawStatement(
    """
INSERT INTO inbound_sms
       (agency_id, received_at, number, shortcode, text, command, patrons_matched, outcome,
        renewed, refused, replies)
VALUES (:agency_id, :received_at, :number, :shortcode, :text, :command, :patrons_matched,
        :outcome, :renewed, :refused, :replies)
RETURNING id
"""
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
        since_ = bind_time(self._conn, since)
        params = {"agency_id": agency_id, "number": number, "body": body, "since": since_}
        return bool(_SEEN_RECENTLY.run(self._conn, params))

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
        row = {
            "agency_id": agency_id,
            "received_at": bind_time(self._conn, received_at),
            "number": number,
            "shortcode": shortcode,
            "text": text,
            "command": command,
            "patrons_matched": bind_json(patrons_matched),
            "outcome": outcome,
            "renewed": renewed,
            "refused": refused,
            "replies": bind_json(replies),
        }
        return int(_ADD.run(self._conn, row)[0][0])

    def search(
        self, agency_id: str, *, number: str | None = None, limit: int = 100, offset: int = 0
    ) -> list[dict[str, Any]]:
        stmt = select(inbound_sms).where(inbound_sms.c.agency_id == agency_id)
        if number is not None:
            stmt = stmt.where(inbound_sms.c.number == number)
        stmt = stmt.order_by(inbound_sms.c.id.desc()).limit(limit).offset(offset)
        return [dict(r) for r in self._conn.execute(stmt).mappings()]
