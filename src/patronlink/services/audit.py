"""The audit log: record an action in its own transaction, and read the log within a scope.

Every audited service takes an ``Actor`` and calls ``record`` with the repositories of the
transaction that makes the change, so an entry exists exactly when the change was committed::

    audit.record(repos, actor, AuditAction.PATRON_BLOCK, ObjectKind.PATRON, pid,
                 agency_id=agency.id, at=now, reason=reason)
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from patronlink.domain.audit import Actor, AuditAction, ObjectKind
from patronlink.domain.paging import Paged
from patronlink.storage.audit import AuditEntry, AuditFilter
from patronlink.storage.database import Database, Repositories

# Detail keys that could carry a secret are never written, whatever a caller passes.
_SECRET_WORDS = ("password", "secret", "token", "pin")


def record(
    repos: Repositories,
    actor: Actor,
    action: AuditAction,
    object_kind: ObjectKind,
    object_id: str | int,
    *,
    agency_id: str | None,
    at: dt.datetime,
    **details: Any,
) -> None:
    """Add one entry in the caller's transaction (it is rolled back with the action)."""
    safe = {k: v for k, v in details.items() if not any(w in k.lower() for w in _SECRET_WORDS)}
    repos.audit.add(
        actor, action, object_kind, str(object_id), agency_id=agency_id, at=at, details=safe
    )


def search(db: Database, f: AuditFilter, limit: int, offset: int) -> Paged[AuditEntry]:
    """Newest first. A reader limited to one agency passes it in ``f.agency_id``."""
    with db.transaction() as repos:
        return Paged(
            repos.audit.search(f, limit=limit, offset=offset),
            repos.audit.count(f),
            offset,
            limit,
        )
