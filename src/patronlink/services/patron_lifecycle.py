"""Staff actions on a patron: approve or reject a self-registration, edit contact fields, block
and unblock with a reason, deactivate, and anonymise on request. Each is audited in its own
transaction."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping
from typing import Any

from patronlink.domain.audit import Actor, AuditAction, ObjectKind
from patronlink.domain.errors import NotFound
from patronlink.domain.patron import Patron
from patronlink.domain.patron_lifecycle import (
    LifecycleAction,
    anonymised,
    block_reason,
    edited,
    next_status,
)
from patronlink.services import audit
from patronlink.services.agencies import require_agency
from patronlink.services.clock import Clock
from patronlink.storage.database import Database, Repositories
from patronlink.storage.patron_lifecycle import ANONYMOUS_PREFIX

_AUDITED = {
    LifecycleAction.APPROVE: AuditAction.PATRON_APPROVE,
    LifecycleAction.REJECT: AuditAction.PATRON_REJECT,
    LifecycleAction.BLOCK: AuditAction.PATRON_BLOCK,
    LifecycleAction.UNBLOCK: AuditAction.PATRON_UNBLOCK,
    LifecycleAction.DEACTIVATE: AuditAction.PATRON_DEACTIVATE,
}


@dataclasses.dataclass(frozen=True)
class PatronState:
    """A patron after a staff action; ``patron`` None when a rejection removed them."""

    patron: Patron | None
    reason: str | None = None


def _find(repos: Repositories, agency_ref: str, patron_id: str) -> tuple[int, Patron]:
    agency = require_agency(repos, agency_ref)
    found = repos.patrons.get_with_pk(agency.id, patron_id)
    if found is None:
        raise NotFound(f"patron {patron_id!r} does not exist in {agency.id}")
    return found


def status_reason(db: Database, agency_ref: str, patron_id: str) -> str | None:
    with db.transaction() as repos:
        pk, _ = _find(repos, agency_ref, patron_id)
        return repos.lifecycle.status_reason(pk)


def change_status(
    db: Database,
    agency_ref: str,
    patron_id: str,
    action: LifecycleAction,
    clock: Clock,
    *,
    actor: Actor,
    reason: str | None = None,
) -> PatronState:
    """Approve, reject, block (``reason`` required), unblock or deactivate one patron."""
    why = block_reason(reason) if action is LifecycleAction.BLOCK else None
    now = clock()
    with db.transaction() as repos:
        pk, patron = _find(repos, agency_ref, patron_id)
        after = next_status(patron.status, action)
        details: dict[str, Any] = {"from": patron.status.value}
        if why:
            details["reason"] = why
        audit.record(
            repos,
            actor,
            _AUDITED[action],
            ObjectKind.PATRON,
            patron.patron_id,
            agency_id=patron.agency_id,
            at=now,
            **details,
        )
        if after is None:
            repos.lifecycle.remove(pk)
            return PatronState(None)
        changed = dataclasses.replace(patron, status=after)
        repos.lifecycle.set_status(pk, changed, why, now)
        return PatronState(changed, why)


def edit_patron(
    db: Database,
    agency_ref: str,
    patron_id: str,
    changes: Mapping[str, Any],
    clock: Clock,
    *,
    actor: Actor,
) -> Patron:
    """Apply contact-field changes; the audit entry names the fields, never their values."""
    now = clock()
    with db.transaction() as repos:
        agency = require_agency(repos, agency_ref)
        pk, patron = _find(repos, agency.id, patron_id)
        updated = edited(patron, agency.country_code, changes)
        changed = sorted(f for f in changes if getattr(updated, f) != getattr(patron, f))
        if changed:
            repos.patrons.update(pk, updated, now)
            audit.record(
                repos,
                actor,
                AuditAction.PATRON_UPDATE,
                ObjectKind.PATRON,
                patron.patron_id,
                agency_id=agency.id,
                at=now,
                fields=changed,
            )
        return updated


def anonymise_patron(
    db: Database, agency_ref: str, patron_id: str, clock: Clock, *, actor: Actor
) -> Patron:
    """Erase the person (GDPR art. 17); loans keep their history under an anonymous id."""
    now = clock()
    with db.transaction() as repos:
        pk, patron = _find(repos, agency_ref, patron_id)
        anonymous = anonymised(patron, f"{ANONYMOUS_PREFIX}{pk}")
        numbers = patron.numbers()
        own = numbers - repos.lifecycle.numbers_shared(patron.agency_id, pk, numbers)
        repos.lifecycle.anonymise(pk, patron, anonymous, now, numbers=own)
        # Recorded under the anonymous id: the log keeps that it happened, not to whom.
        audit.record(
            repos,
            actor,
            AuditAction.PATRON_ANONYMISE,
            ObjectKind.PATRON,
            anonymous.patron_id,
            agency_id=patron.agency_id,
            at=now,
        )
        return anonymous


@dataclasses.dataclass(frozen=True)
class RetentionResult:
    agency_id: str
    patron_ids: list[str]  # due (dry run) or anonymised


def apply_retention(
    db: Database,
    clock: Clock,
    *,
    dry_run: bool,
    agency_ref: str | None = None,
    actor: Actor,
    limit: int = 1000,
) -> list[RetentionResult]:
    """Anonymise the patrons past each agency's ``retention_days`` (only agencies that set it).

    A dry run lists them and changes nothing. Each patron is anonymised in its own transaction,
    so a large backlog is worked off in pieces (``limit`` per agency and run).
    """
    now = clock()
    with db.transaction() as repos:
        chosen = [require_agency(repos, agency_ref)] if agency_ref else repos.agencies.list()
        due: list[RetentionResult] = []
        for agency in chosen:
            days = repos.agencies.settings(agency.id).retention_days
            if not days:
                continue
            today = now.astimezone(agency.zone).date()
            ids = repos.lifecycle.past_retention(
                agency.id,
                today - dt.timedelta(days=days),
                now - dt.timedelta(days=days),
                limit,
            )
            due.append(RetentionResult(agency.id, ids))
    if not dry_run:
        for result in due:
            for patron_id in result.patron_ids:
                anonymise_patron(db, result.agency_id, patron_id, clock, actor=actor)
    return due
