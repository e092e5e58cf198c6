"""Pausing and resuming outgoing texts, for one agency or for every agency.

A pause holds texts as they are: queued texts stay queued (the claim skips them, with no lease
taken) and go out in their usual order once sending resumes. Texts a worker had claimed before
the pause (at most a claim batch per worker) still go out. The pause lives in the database, so
every worker and server sees it at its next claim, and it outlasts restarts.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from patronlink.domain.audit import SYSTEM, Actor, AuditAction, ObjectKind
from patronlink.services import audit
from patronlink.services.agencies import require_agency
from patronlink.services.clock import Clock
from patronlink.storage.database import Database
from patronlink.storage.pauses import Pause
from patronlink.storage.tables import PAUSE_EVERYWHERE

log = logging.getLogger("patronlink.sms.pause")


@dataclass(frozen=True)
class PauseChange:
    scope: str  # an agency's ISIL, or '*'
    changed: bool  # False: it was paused (or running) already
    queued: int  # texts queued in the scope now
    still_paused: tuple[str, ...] = ()  # after a resume: pauses that still hold texts


def describe(scope: str) -> str:
    return "every agency" if scope == PAUSE_EVERYWHERE else scope


def pause_sending(
    db: Database,
    agency_ref: str | None,
    by: str,
    clock: Clock,
    *,
    reason: str | None = None,
    actor: Actor = SYSTEM,
) -> PauseChange:
    """Pause one agency (ISIL or number) or, with ``None``, every agency; a pause that begins
    is in the audit log."""
    with db.transaction() as repos:
        scope = PAUSE_EVERYWHERE if agency_ref is None else require_agency(repos, agency_ref).id
        now = clock()
        changed = repos.pauses.pause(scope, now, by, reason)
        if changed:
            audit.record(
                repos,
                actor,
                AuditAction.SMS_PAUSE,
                ObjectKind.SENDING,
                scope,
                agency_id=None if scope == PAUSE_EVERYWHERE else scope,
                at=now,
                reason=reason,
            )
        queued = repos.pauses.queued(None if scope == PAUSE_EVERYWHERE else scope)
    if changed:
        log.warning("sending paused for %s", describe(scope), extra={"by": by, "reason": reason})
    return PauseChange(scope, changed, queued)


def resume_sending(
    db: Database,
    agency_ref: str | None,
    by: str,
    clock: Clock,
    *,
    actor: Actor = SYSTEM,
) -> PauseChange:
    """End the pause of one agency or, with ``None``, the pause of every agency (pauses of
    single agencies stay: they are named in ``still_paused``); an ended pause is in the audit
    log."""
    with db.transaction() as repos:
        scope = PAUSE_EVERYWHERE if agency_ref is None else require_agency(repos, agency_ref).id
        ended = repos.pauses.resume(scope)
        if ended is not None:
            audit.record(
                repos,
                actor,
                AuditAction.SMS_RESUME,
                ObjectKind.SENDING,
                scope,
                agency_id=None if scope == PAUSE_EVERYWHERE else scope,
                at=clock(),
            )
        queued = repos.pauses.queued(None if scope == PAUSE_EVERYWHERE else scope)
        still = tuple(p.scope for p in repos.pauses.list())
    if ended is not None:
        log.warning("sending resumed for %s", describe(scope), extra={"by": by})
    return PauseChange(scope, ended is not None, queued, still)


def pauses(db: Database) -> list[Pause]:
    with db.transaction() as repos:
        return repos.pauses.list()
