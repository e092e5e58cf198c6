"""Queueing texts and the staff error queue (list, show, retry, cancel)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from patronlink.config.schema import AgencySettings
from patronlink.domain import phone
from patronlink.domain.agency import Agency
from patronlink.domain.audit import SYSTEM, Actor, AuditAction
from patronlink.domain.errors import NotFound, ValidationError
from patronlink.domain.outbox import (
    MessageStatus,
    QuietHours,
    require_move,
    require_staff_move,
    statuses_that_can_become,
)
from patronlink.domain.paging import Paged
from patronlink.domain.sms_text import account
from patronlink.gateways.registry import can_schedule
from patronlink.services.agencies import require_agency
from patronlink.services.clock import Clock
from patronlink.storage.database import Database, Repositories
from patronlink.storage.outbox import MessageFilter, NewMessage

MAX_TEXT_CHARS = 1600  # ten concatenated UCS-2 parts and then some; gateways refuse longer
MAX_SCHEDULE_AHEAD = dt.timedelta(days=92)  # LINK Mobility accepts at most three months


def prepare(
    repos: Repositories,
    agency: Agency,
    to: str,
    text: str,
    *,
    now: dt.datetime,
    send_at: dt.datetime | None,
    origin: str,
    settings: AgencySettings | None = None,
) -> NewMessage:
    """Validate one text and decide when it may go out (never inside the quiet hours)."""
    body = text.strip()
    if not body:
        raise ValidationError("the text is empty", field="text")
    if len(body) > MAX_TEXT_CHARS:
        raise ValidationError(f"the text is longer than {MAX_TEXT_CHARS} characters", field="text")
    if "\x00" in body:
        raise ValidationError("the text contains a NUL character", field="text")
    number = phone.normalise(to, agency.country_code, field="to")
    due = now if send_at is None else send_at
    if due.tzinfo is None:
        raise ValidationError("send_at needs a time zone or offset", field="send_at")
    if due - now > MAX_SCHEDULE_AHEAD:
        raise ValidationError("send_at is more than three months ahead", field="send_at")
    due = max(due.astimezone(dt.UTC), now)
    sms = (repos.agencies.settings(agency.id) if settings is None else settings).sms
    if sms.quiet_hours:
        due = QuietHours.parse(sms.quiet_hours).release_time(due, agency.zone)
    counted = account(body)
    # A gateway that can hold a text gets it at once with its schedule (sendtiming or
    # scheduledTime); for the others the text waits here until it is due.
    pick_up = now if can_schedule(sms.driver) else due
    return NewMessage(
        agency_id=agency.id,
        to_number=number,
        text=body,
        encoding=counted.encoding,
        segments=counted.segments,
        origin=origin,
        send_at=due,
        next_attempt_at=pick_up,
    )


def queue_sms(
    db: Database,
    agency_ref: str,
    to: str,
    text: str,
    clock: Clock,
    *,
    send_at: dt.datetime | None = None,
    origin: str = "staff",
) -> int:
    now = clock()
    with db.transaction() as repos:
        agency = require_agency(repos, agency_ref)
        message = prepare(repos, agency, to, text, now=now, send_at=send_at, origin=origin)
        return repos.outbox.enqueue([message], now)[0]


@dataclass(frozen=True)
class MessageDetail:
    message: dict[str, Any]
    attempts: list[dict[str, Any]]


def list_messages(db: Database, f: MessageFilter, limit: int, offset: int) -> list[dict[str, Any]]:
    with db.transaction() as repos:
        return repos.outbox.search(f, limit=limit, offset=offset)


def page_messages(db: Database, f: MessageFilter, limit: int, offset: int) -> Paged[dict[str, Any]]:
    """One page of ``list_messages`` with the number of messages that match ``f``."""
    with db.transaction() as repos:
        rows = repos.outbox.search(f, limit=limit, offset=offset)
        return Paged(rows, repos.outbox.count(f), offset, limit)


def attempts_of(db: Database, message_ids: Sequence[int]) -> dict[int, list[dict[str, Any]]]:
    """The sending attempts of each of the texts (a page of the error queue), oldest first."""
    with db.transaction() as repos:
        return repos.overview.attempts_of(message_ids)


def message_detail(db: Database, message_id: int, agency_id: str | None) -> MessageDetail:
    """One message with its attempts; another agency's message is reported as not found."""
    with db.transaction() as repos:
        found = repos.outbox.get(message_id)
        if found is None or (agency_id is not None and found["agency_id"] != agency_id):
            raise NotFound(f"message {message_id} does not exist")
        return MessageDetail(found, repos.outbox.attempts(message_id))


def _action(to: MessageStatus) -> AuditAction:
    return (
        AuditAction.MESSAGE_CANCEL if to is MessageStatus.CANCELLED else AuditAction.MESSAGE_RETRY
    )


def move_messages(
    db: Database, f: MessageFilter, to: MessageStatus, clock: Clock, *, actor: Actor = SYSTEM
) -> list[int]:
    """Retry (to queued) or cancel every message matching ``f`` that may make that move.

    Each moved message gets an audit entry in the same transaction.
    """
    now = clock()
    with db.transaction() as repos:
        moved = repos.outbox.move(f, statuses_that_can_become(to), to, now)
        repos.audit.add_for_messages(actor, _action(to), moved, now)
        return moved


def move_one(
    db: Database,
    message_id: int,
    agency_id: str | None,
    to: MessageStatus,
    clock: Clock,
    *,
    actor: Actor = SYSTEM,
) -> None:
    """Retry or cancel one message; ``Conflict`` when its status does not allow it."""
    now = clock()
    with db.transaction() as repos:
        found = repos.outbox.get(message_id)
        if found is None or (agency_id is not None and found["agency_id"] != agency_id):
            raise NotFound(f"message {message_id} does not exist")
        require_staff_move(MessageStatus(found["status"]), found["delivery"], to)
        moved = repos.outbox.move(
            MessageFilter(ids=(message_id,)), statuses_that_can_become(to), to, now
        )
        if not moved:  # changed under us between the read and the update
            require_move(MessageStatus.SENDING, to)
        repos.audit.add_for_messages(actor, _action(to), moved, now)
