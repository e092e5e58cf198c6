"""Queueing a text at most once per ``Idempotency-Key`` (``POST .../messages``).

A client that got no answer (a timeout, a 502 from a proxy, a 5xx) sends the same request again
with the same key; it gets the message the first request queued, and nothing is queued twice.
Keys belong to one staff API token and one agency, and are remembered for
``PATRONLINK_IDEMPOTENCY_KEY_HOURS`` (24 h): after that the same key queues a new text.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from patronlink.domain.errors import Conflict, ValidationError
from patronlink.domain.idempotency import HEADER, fingerprint
from patronlink.services.agencies import require_agency
from patronlink.services.clock import Clock
from patronlink.services.outbox import prepare
from patronlink.storage.database import Database


@dataclass(frozen=True)
class Queued:
    message_id: int
    replayed: bool  # the key was known: this is the first request's message


def queue_sms_once(
    db: Database,
    agency_ref: str,
    token_id: int,
    key: str,
    to: str,
    text: str,
    clock: Clock,
    *,
    send_at: dt.datetime | None,
    lifetime: dt.timedelta,
    origin: str = "staff",
) -> Queued:
    """Queue the text unless ``key`` queued it already.

    ``ValidationError`` when the key was used for a different request within its lifetime (the
    request as given: another spelling of the same number is another request).
    """
    when = None if send_at is None else send_at.astimezone(dt.UTC).isoformat()
    request_hash = fingerprint({"to": to, "text": text, "send_at": when})
    for attempt in range(2):
        now = clock()
        try:
            with db.transaction() as repos:
                agency = require_agency(repos, agency_ref)
                repos.idempotency.forget_before(now - lifetime)
                found = repos.idempotency.find(token_id, agency.id, key)
                if found is not None:
                    if found.request_hash != request_hash:
                        raise ValidationError(
                            f"this {HEADER} was used {_ago(now - found.created_at)} for a "
                            f"different request (message {found.message_id}); a new request "
                            "needs a new key",
                            field=HEADER,
                        )
                    return Queued(found.message_id, replayed=True)
                message = prepare(
                    repos,
                    agency,
                    to,
                    text,
                    now=now,
                    send_at=send_at,
                    origin=origin,
                )
                [message_id] = repos.outbox.enqueue([message], now)
                repos.idempotency.remember(token_id, agency.id, key, request_hash, message_id, now)
                return Queued(message_id, replayed=False)
        except Conflict:
            # The same key in a request handled at the same moment, committed first: the
            # transaction above is rolled back, and the next round answers as that request did.
            if attempt:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


def _ago(age: dt.timedelta) -> str:
    seconds = max(0, int(age.total_seconds()))
    if seconds < 120:
        return f"{seconds} s ago"
    if seconds < 7200:
        return f"{seconds // 60} min ago"
    return f"{seconds // 3600} h ago"
