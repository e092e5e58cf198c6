"""The outbox: message statuses, the transitions between them, retry backoff and quiet hours.

A message row is the job::

    queued ──claim──▶ sending ──▶ sent
      ▲  │               │
      │  │               ├──temporary failure, attempts left──▶ queued (next_attempt_at later)
      │  │               └──permanent failure / last attempt──▶ error  (the staff error queue)
      │  └──staff──▶ cancelled
      └──staff retry── error ──staff──▶ cancelled

A ``sent`` text whose delivery report says ``failed`` (``patronlink.domain.delivery``) is on the
error queue too, and staff may queue it again or dismiss it (cancelled) like an ``error``.

A worker that dies while a message is ``sending`` leaves a lease that expires; the message is then
claimed again (at-least-once delivery).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum
from zoneinfo import ZoneInfo

from patronlink.domain.errors import Conflict


class MessageStatus(StrEnum):
    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    ERROR = "error"
    CANCELLED = "cancelled"


TRANSITIONS: dict[MessageStatus, frozenset[MessageStatus]] = {
    MessageStatus.QUEUED: frozenset({MessageStatus.SENDING, MessageStatus.CANCELLED}),
    MessageStatus.SENDING: frozenset(
        {MessageStatus.SENT, MessageStatus.QUEUED, MessageStatus.ERROR}
    ),
    MessageStatus.ERROR: frozenset({MessageStatus.QUEUED, MessageStatus.CANCELLED}),
    MessageStatus.SENT: frozenset(),
    MessageStatus.CANCELLED: frozenset(),
}


def can_move(current: MessageStatus, target: MessageStatus) -> bool:
    return target in TRANSITIONS[current]


def require_move(current: MessageStatus, target: MessageStatus) -> None:
    if not can_move(current, target):
        raise Conflict(f"a message that is {current.value} cannot become {target.value}")


# A sent text whose delivery report says ``failed`` is on the staff error queue as well: staff may
# send it again (to queued) or dismiss it (to cancelled). Nothing else leaves ``sent``.
UNDELIVERED_MOVES: frozenset[MessageStatus] = frozenset(
    {MessageStatus.QUEUED, MessageStatus.CANCELLED}
)


def require_staff_move(current: MessageStatus, delivery: str, target: MessageStatus) -> None:
    """``require_move``, plus the two moves staff may make with an undelivered sent text."""
    if current is MessageStatus.SENT and delivery == "failed" and target in UNDELIVERED_MOVES:
        return
    require_move(current, target)


def statuses_that_can_become(target: MessageStatus) -> frozenset[MessageStatus]:
    return frozenset(s for s, targets in TRANSITIONS.items() if target in targets)


class AttemptOutcome(StrEnum):
    SENT = "sent"
    BUFFERED = "buffered"  # XML family 1042: the gateway holds it; it counts as sent
    TEMPORARY = "temporary"
    PERMANENT = "permanent"
    # Not sent because the worker lacks a variable the agency's gateway settings name: the text
    # waits, the attempt is given back, and it is no failure of the gateway (issue 18).
    HELD = "held"


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with "equal jitter": half the delay fixed, half random.

    Jitter spreads retries of many messages that failed together (a gateway outage) so that they
    do not all return at the same second.
    """

    base_seconds: float = 30.0
    cap_seconds: float = 3600.0

    def delay(self, attempts_made: int, random_unit: float) -> dt.timedelta:
        """Delay before the next attempt; ``random_unit`` in [0, 1) is passed in (no hidden RNG)."""
        exponent = max(attempts_made - 1, 0)
        ceiling = min(self.cap_seconds, self.base_seconds * (2 ** min(exponent, 30)))
        return dt.timedelta(seconds=ceiling / 2 + ceiling / 2 * random_unit)


def next_step_after_temporary(attempts_made: int, max_attempts: int) -> MessageStatus:
    """Back to the queue while attempts remain, else onto the error queue."""
    return MessageStatus.QUEUED if attempts_made < max_attempts else MessageStatus.ERROR


@dataclass(frozen=True, slots=True)
class QuietHours:
    """A daily window in the agency's local time in which no text goes out, e.g. 21:00-08:00."""

    start: dt.time
    end: dt.time

    @classmethod
    def parse(cls, text: str) -> QuietHours:
        start, end = text.split("-")
        return cls(dt.time.fromisoformat(start), dt.time.fromisoformat(end))

    def contains(self, local: dt.time) -> bool:
        if self.start <= self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end  # the window spans midnight

    def release_time(self, when: dt.datetime, zone: ZoneInfo) -> dt.datetime:
        """``when`` itself if it is outside the window, else the window's end (as UTC)."""
        local = when.astimezone(zone)
        if not self.contains(local.time().replace(tzinfo=None)):
            return when
        end_date = local.date()
        if self.start > self.end and local.time().replace(tzinfo=None) >= self.start:
            end_date += dt.timedelta(days=1)
        # Build the local wall time and let zoneinfo resolve DST (fold=0: the first occurrence).
        release = dt.datetime.combine(end_date, self.end, tzinfo=zone)
        return release.astimezone(dt.UTC)
