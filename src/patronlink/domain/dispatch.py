"""What the dispatcher decides about one text, apart from the concurrency that sends it.

The dispatcher (``patronlink.worker.dispatcher``) claims texts, sends them and writes their
outcomes; what becomes of a text after an attempt is ``decide``: the kind of attempt (sent,
buffered, a temporary or permanent failure, held for a missing secret), the attempts made and
the agency's ``SendPolicy`` give the text's next status and when it is due again. It is a pure
function, so every case is tested as a table without a database or a gateway.

A claim counts the attempt it starts (``ClaimedMessage.attempts``). A held text was not sent:
``GIVES_BACK_ATTEMPT`` says which attempt kinds the outcome write takes back, so waiting for the
operator never uses up the text's attempts.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import NamedTuple
from zoneinfo import ZoneInfo

from patronlink.domain.outbox import (
    AttemptOutcome,
    MessageStatus,
    QuietHours,
    RetryPolicy,
    next_step_after_temporary,
)

# How long a held text waits before it looks again for the gateway secret it lacks.
HOLD_FOR_MISSING_SECRET = dt.timedelta(minutes=5)

# Attempts the outcome write does not count: the text was never offered to the gateway.
GIVES_BACK_ATTEMPT = frozenset({AttemptOutcome.HELD})

_UTC = ZoneInfo("UTC")


@dataclass(frozen=True, slots=True)
class ClaimedMessage:
    id: int
    agency_id: str
    to_number: str
    text: str
    attempts: int  # including the attempt this claim starts
    send_at: dt.datetime
    # First claimed more than the maximum age after send_at: to the error queue, not out.
    stale: bool = False


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one attempt ended in, and where the message goes next."""

    message_id: int
    status: MessageStatus  # sent | queued | error
    started_at: dt.datetime
    finished_at: dt.datetime
    driver: str
    attempt_outcome: str  # an ``AttemptOutcome`` value
    next_attempt_at: dt.datetime | None = None
    http_status: int | None = None
    code: str | None = None
    description: str | None = None
    gateway_message_id: str | None = None
    buffered: bool = False
    # none | pending: whether the provider will report on this text (only for a sent text).
    delivery: str = "none"


@dataclass(frozen=True, slots=True)
class SendPolicy:
    """An agency's rules for its texts' next attempts, built once per loaded route."""

    max_attempts: int
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    quiet: QuietHours | None = None
    zone: ZoneInfo = _UTC
    # The gateway holds a text until a given time: quiet hours are applied when queueing.
    schedules: bool = False


class NextStep(NamedTuple):
    status: MessageStatus
    next_attempt_at: dt.datetime | None = None


_SENT = NextStep(MessageStatus.SENT)
_ERROR = NextStep(MessageStatus.ERROR)


def decide(
    kind: AttemptOutcome,
    attempts: int,
    policy: SendPolicy,
    finished: dt.datetime,
    random_unit: float,
) -> NextStep:
    """The text's next status after an attempt of ``kind``, the ``attempts``-th (counting it).

    Sent or buffered: sent. Permanent: the error queue. Held: queued again after
    ``HOLD_FOR_MISSING_SECRET``, whatever the attempts (the attempt is given back). Temporary:
    queued after the retry policy's backoff (moved out of the agency's quiet hours unless the
    gateway schedules) while attempts remain, else the error queue. ``random_unit`` in [0, 1)
    is the backoff's jitter.
    """
    if kind is AttemptOutcome.SENT or kind is AttemptOutcome.BUFFERED:
        return _SENT
    if kind is AttemptOutcome.PERMANENT:
        return _ERROR
    if kind is AttemptOutcome.HELD:
        return NextStep(MessageStatus.QUEUED, finished + HOLD_FOR_MISSING_SECRET)
    if next_step_after_temporary(attempts, policy.max_attempts) is MessageStatus.ERROR:
        return _ERROR
    next_at = finished + policy.retry.delay(attempts, random_unit)
    if policy.quiet is not None and not policy.schedules:
        next_at = policy.quiet.release_time(next_at, policy.zone)
    return NextStep(MessageStatus.QUEUED, next_at)


@dataclass(frozen=True)
class DispatchSettings:
    """How the dispatcher works; the defaults of the matching `PATRONLINK_*` settings."""

    batch_size: int = 200
    max_in_flight: int = 256
    lease_seconds: float = 300.0
    poll_seconds: float = 1.0
    flush_seconds: float = 0.05
    flush_size: int = 200
    routes_refresh_seconds: float = 30.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    # A gateway failing this many texts in a row (temporary failures: 5xx, timeouts, refused
    # connections) gets one warning line until it answers again.
    gateway_failures_before_warning: int = 10
    # On the way out, how long to keep trying to write outcomes and give back unsent texts
    # while the database is away.
    shutdown_seconds: float = 30.0
    # A text first claimed longer than this after its send time goes to the error queue instead
    # of out (a restored backup, a worker down for days); 0 sends every text however old.
    max_age_seconds: float = 86400.0
