"""Read-only queries behind the staff pages: counts for the dashboard, runs and attempts in bulk.

Every query takes ``agency_id``; None means every agency (an administrator's view).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, and_, func, select

from patronlink.domain.outbox import MessageStatus
from patronlink.storage.import_runs import RunRow, run_row
from patronlink.storage.tables import import_runs, inbound_sms, message_attempts, messages


def _scoped(column: Any, agency_id: str | None) -> Any:
    return column == agency_id if agency_id is not None else and_(True)


def _runs_in(agency_id: str | None, source_id: str | None) -> Any:
    scoped = _scoped(import_runs.c.agency_id, agency_id)
    return scoped if source_id is None else and_(scoped, import_runs.c.source_id == source_id)


class OverviewQueries:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def count_messages(
        self,
        agency_id: str | None,
        status: MessageStatus,
        *,
        changed_since: dt.datetime | None = None,
    ) -> int:
        stmt = select(func.count()).where(
            _scoped(messages.c.agency_id, agency_id), messages.c.status == status.value
        )
        if changed_since is not None:
            # sent_at is set when a text is sent; updated_at when it moved to the error queue.
            column = messages.c.sent_at if status is MessageStatus.SENT else messages.c.updated_at
            stmt = stmt.where(column >= changed_since)
        return int(self._conn.execute(stmt).scalar_one())

    def count_inbound(self, agency_id: str | None, since: dt.datetime) -> int:
        stmt = select(func.count()).where(
            _scoped(inbound_sms.c.agency_id, agency_id), inbound_sms.c.received_at >= since
        )
        return int(self._conn.execute(stmt).scalar_one())

    def runs(
        self,
        agency_id: str | None,
        *,
        source_id: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> list[RunRow]:
        stmt = select(import_runs).where(_runs_in(agency_id, source_id))
        rows = self._conn.execute(
            stmt.order_by(import_runs.c.id.desc()).limit(limit).offset(offset)
        )
        return [run_row(r) for r in rows]

    def count_runs(self, agency_id: str | None, *, source_id: str | None = None) -> int:
        stmt = select(func.count()).select_from(import_runs).where(_runs_in(agency_id, source_id))
        return int(self._conn.execute(stmt).scalar_one())

    def last_run_per_source(self, agency_id: str | None) -> dict[str, RunRow]:
        latest = (
            select(func.max(import_runs.c.id))
            .where(_scoped(import_runs.c.agency_id, agency_id))
            .group_by(import_runs.c.source_id)
        )
        rows = self._conn.execute(select(import_runs).where(import_runs.c.id.in_(latest)))
        return {r.source_id: run_row(r) for r in rows}

    def attempts_of(self, message_ids: Sequence[int]) -> dict[int, list[dict[str, Any]]]:
        found: dict[int, list[dict[str, Any]]] = {i: [] for i in message_ids}
        if not message_ids:
            return found
        stmt = (
            select(message_attempts)
            .where(message_attempts.c.message_id.in_(list(message_ids)))
            .order_by(message_attempts.c.id)
        )
        for row in self._conn.execute(stmt).mappings():
            found[int(row["message_id"])].append(dict(row))
        return found

    def messages_to(
        self, agency_id: str, numbers: Sequence[str], *, limit: int = 50
    ) -> list[dict[str, Any]]:
        if not numbers:
            return []
        stmt = (
            select(messages)
            .where(messages.c.agency_id == agency_id, messages.c.to_number.in_(list(numbers)))
            .order_by(messages.c.id.desc())
            .limit(limit)
        )
        return [dict(r) for r in self._conn.execute(stmt).mappings()]

    def inbound_from(
        self, agency_id: str, numbers: Sequence[str], *, limit: int = 50
    ) -> list[dict[str, Any]]:
        if not numbers:
            return []
        stmt = (
            select(inbound_sms)
            .where(inbound_sms.c.agency_id == agency_id, inbound_sms.c.number.in_(list(numbers)))
            .order_by(inbound_sms.c.id.desc())
            .limit(limit)
        )
        return [dict(r) for r in self._conn.execute(stmt).mappings()]
