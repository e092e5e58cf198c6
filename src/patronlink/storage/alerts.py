"""What the dashboard's alerts are computed from: recent attempts per agency, runs per source."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import Connection, case, func, select

from patronlink.domain.outbox import AttemptOutcome
from patronlink.storage.tables import message_attempts, messages

_SUCCESS = (AttemptOutcome.SENT.value, AttemptOutcome.BUFFERED.value)
# A text held for a secret the worker lacks was not offered to the gateway: no failure of it.
_NOT_ATTEMPTS = (AttemptOutcome.HELD.value,)


@dataclass(frozen=True, slots=True)
class AttemptTally:
    agency_id: str
    attempts: int
    successes: int
    last_failure: str | None


class AlertQueries:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def attempts_since(self, agency_id: str | None, since: dt.datetime) -> list[AttemptTally]:
        """Per agency: attempts of its gateway finished since ``since`` (holds are none), how
        many succeeded, the last reason."""
        success = func.sum(case((message_attempts.c.outcome.in_(_SUCCESS), 1), else_=0))
        stmt = (
            select(messages.c.agency_id, func.count(), success, func.max(message_attempts.c.id))
            .join(messages, messages.c.id == message_attempts.c.message_id)
            .where(
                message_attempts.c.finished_at >= since,
                message_attempts.c.outcome.not_in(_NOT_ATTEMPTS),
            )
            .group_by(messages.c.agency_id)
        )
        if agency_id is not None:
            stmt = stmt.where(messages.c.agency_id == agency_id)
        rows = self._conn.execute(stmt).all()
        out = []
        for agency, count, successes, last_id in rows:
            description = self._conn.execute(
                select(message_attempts.c.description).where(message_attempts.c.id == last_id)
            ).scalar_one_or_none()
            out.append(AttemptTally(agency, int(count), int(successes or 0), description))
        return out
