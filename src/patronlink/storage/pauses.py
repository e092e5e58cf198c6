"""Paused sending: rows of ``sms_pauses``, one per paused agency or one for every agency.

The claim (``storage/outbox.py``) reads the table itself; this repository is what the CLI, the
worker's start-up and the staff pages use.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import Connection, delete, func, insert, select

from patronlink.storage.tables import PAUSE_EVERYWHERE, messages, sms_pauses


@dataclass(frozen=True, slots=True)
class Pause:
    scope: str  # an agency's ISIL, or PAUSE_EVERYWHERE
    paused_at: dt.datetime
    paused_by: str
    reason: str | None

    @property
    def everywhere(self) -> bool:
        return self.scope == PAUSE_EVERYWHERE


class PauseRepository:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def pause(self, scope: str, now: dt.datetime, by: str, reason: str | None) -> bool:
        """Pause ``scope``; False when it was paused already (the first pause is kept)."""
        if self.get(scope) is not None:
            return False
        self._conn.execute(
            insert(sms_pauses).values(scope=scope, paused_at=now, paused_by=by[:100], reason=reason)
        )
        return True

    def resume(self, scope: str) -> Pause | None:
        """End the pause of ``scope``; the pause that ended, or None when there was none."""
        found = self.get(scope)
        if found is not None:
            self._conn.execute(delete(sms_pauses).where(sms_pauses.c.scope == scope))
        return found

    def get(self, scope: str) -> Pause | None:
        row = self._conn.execute(select(sms_pauses).where(sms_pauses.c.scope == scope)).first()
        return None if row is None else Pause(row.scope, row.paused_at, row.paused_by, row.reason)

    def list(self) -> list[Pause]:
        rows = self._conn.execute(select(sms_pauses).order_by(sms_pauses.c.scope)).all()
        return [Pause(r.scope, r.paused_at, r.paused_by, r.reason) for r in rows]

    def queued(self, agency_id: str | None) -> int:
        """Texts waiting in the queue (of one agency, or all): what a pause holds back."""
        stmt = select(func.count()).where(messages.c.status == "queued")
        if agency_id is not None:
            stmt = stmt.where(messages.c.agency_id == agency_id)
        return int(self._conn.execute(stmt).scalar_one())
