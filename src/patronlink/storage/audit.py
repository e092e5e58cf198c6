"""The audit log: one row per audited action, written in the transaction of the action itself."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Connection, String, and_, cast, func, insert, literal, select

from patronlink.domain.audit import Actor, AuditAction, ObjectKind
from patronlink.storage.tables import audit_log, messages


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: int
    at: dt.datetime
    actor_kind: str
    actor: str
    source: str | None
    action: str
    agency_id: str | None
    object_kind: str
    object_id: str
    details: dict[str, Any]


@dataclass(frozen=True, slots=True)
class AuditFilter:
    """Every field narrows; an agency-scoped reader always sets ``agency_id``."""

    agency_id: str | None = None
    actor: str | None = None
    actions: tuple[AuditAction, ...] = ()
    object_kind: ObjectKind | None = None
    object_id: str | None = None
    since: dt.datetime | None = None
    until: dt.datetime | None = None


class AuditRepository:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def add(
        self,
        actor: Actor,
        action: AuditAction,
        object_kind: ObjectKind,
        object_id: str,
        *,
        agency_id: str | None,
        at: dt.datetime,
        details: dict[str, Any] | None = None,
    ) -> int:
        return int(
            self._conn.execute(
                insert(audit_log)
                .values(
                    at=at,
                    actor_kind=actor.kind.value,
                    actor=actor.name[:200],
                    source=actor.source[:200] if actor.source else None,
                    action=action.value,
                    agency_id=agency_id,
                    object_kind=object_kind.value,
                    object_id=object_id[:128],
                    details=details or {},
                )
                .returning(audit_log.c.id)
            ).scalar_one()
        )

    def add_for_messages(
        self, actor: Actor, action: AuditAction, message_ids: list[int], at: dt.datetime
    ) -> None:
        """One entry per message, each with the message's own agency, in one statement.

        A "retry all 117 that match" writes 117 entries without reading the rows back first.
        """
        if not message_ids:
            return
        columns = ("at", "actor_kind", "actor", "source", "action", "agency_id")
        source = select(
            literal(at, audit_log.c.at.type),
            literal(actor.kind.value),
            literal(actor.name[:200]),
            literal(actor.source[:200] if actor.source else None, String()),
            literal(action.value),
            messages.c.agency_id,
            literal(ObjectKind.MESSAGE.value),
            cast(messages.c.id, String),
            literal({}, audit_log.c.details.type),
        ).where(messages.c.id.in_(message_ids))
        self._conn.execute(
            insert(audit_log).from_select([*columns, "object_kind", "object_id", "details"], source)
        )

    def search(self, f: AuditFilter, *, limit: int, offset: int = 0) -> list[AuditEntry]:
        stmt = (
            select(audit_log)
            .where(and_(True, *self._conditions(f)))
            .order_by(audit_log.c.id.desc())
            .limit(limit)
            .offset(offset)
        )
        return [
            AuditEntry(
                id=r.id,
                at=r.at,
                actor_kind=r.actor_kind,
                actor=r.actor,
                source=r.source,
                action=r.action,
                agency_id=r.agency_id,
                object_kind=r.object_kind,
                object_id=r.object_id,
                details=dict(r.details or {}),
            )
            for r in self._conn.execute(stmt)
        ]

    def count(self, f: AuditFilter) -> int:
        stmt = select(func.count()).select_from(audit_log).where(and_(True, *self._conditions(f)))
        return int(self._conn.execute(stmt).scalar_one())

    @staticmethod
    def _conditions(f: AuditFilter) -> list[ColumnElement[bool]]:
        c = audit_log.c
        found: list[ColumnElement[bool]] = []
        if f.agency_id is not None:
            found.append(c.agency_id == f.agency_id)
        if f.actor:
            found.append(c.actor == f.actor)
        if f.actions:
            found.append(c.action.in_([a.value for a in f.actions]))
        if f.object_kind is not None:
            found.append(c.object_kind == f.object_kind.value)
        if f.object_id:
            found.append(c.object_id == f.object_id)
        if f.since is not None:
            found.append(c.at >= f.since)
        if f.until is not None:
            found.append(c.at < f.until)
        return found
