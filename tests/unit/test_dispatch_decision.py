"""The dispatcher's decision after an attempt, as a table: no database, no gateway."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from patronlink.domain.dispatch import (
    GIVES_BACK_ATTEMPT,
    HOLD_FOR_MISSING_SECRET,
    NextStep,
    SendPolicy,
    decide,
)
from patronlink.domain.outbox import AttemptOutcome, MessageStatus, QuietHours, RetryPolicy

CPH = ZoneInfo("Europe/Copenhagen")
# 12:00 in Copenhagen (winter, UTC+1): outside the quiet hours below.
NOON = dt.datetime(2026, 11, 24, 11, 0, tzinfo=dt.UTC)
# 20:50 in Copenhagen: a retry ten minutes or more later falls in 21:00-08:00.
EVENING = dt.datetime(2026, 11, 24, 19, 50, tzinfo=dt.UTC)
MORNING_AFTER = dt.datetime(2026, 11, 25, 7, 0, tzinfo=dt.UTC)  # 08:00 in Copenhagen

RETRY = RetryPolicy(base_seconds=60, cap_seconds=600)
PLAIN = SendPolicy(max_attempts=3, retry=RETRY, zone=CPH)
QUIET = SendPolicy(max_attempts=3, retry=RETRY, quiet=QuietHours.parse("21:00-08:00"), zone=CPH)
# A gateway that schedules texts itself: quiet hours were applied when the text was queued.
SCHEDULING = SendPolicy(
    max_attempts=3,
    retry=RETRY,
    quiet=QuietHours.parse("21:00-08:00"),
    zone=CPH,
    schedules=True,
)

S, B, T, P, H = (
    AttemptOutcome.SENT,
    AttemptOutcome.BUFFERED,
    AttemptOutcome.TEMPORARY,
    AttemptOutcome.PERMANENT,
    AttemptOutcome.HELD,
)
SENT = NextStep(MessageStatus.SENT, None)
ERROR = NextStep(MessageStatus.ERROR, None)


def queued(at: dt.datetime, seconds: float = 0) -> NextStep:
    return NextStep(MessageStatus.QUEUED, at + dt.timedelta(seconds=seconds))


# kind, attempts (this one counted), policy, finished, jitter, expected
TABLE = [
    # Sent and buffered: sent, on any attempt, whatever the policy.
    (S, 1, PLAIN, NOON, 0.0, SENT),
    (S, 3, PLAIN, NOON, 0.0, SENT),
    (S, 9, QUIET, EVENING, 0.5, SENT),
    (B, 1, PLAIN, NOON, 0.0, SENT),
    (B, 3, SCHEDULING, EVENING, 0.0, SENT),
    # Permanent: the error queue, attempts left or not.
    (P, 1, PLAIN, NOON, 0.0, ERROR),
    (P, 3, PLAIN, NOON, 0.0, ERROR),
    (P, 1, QUIET, EVENING, 0.0, ERROR),
    # Temporary with attempts left: back off, 60 s doubling, half of it jitter.
    (T, 1, PLAIN, NOON, 0.0, queued(NOON, 30)),
    (T, 1, PLAIN, NOON, 0.5, queued(NOON, 45)),
    (T, 2, PLAIN, NOON, 0.0, queued(NOON, 60)),
    (T, 2, PLAIN, NOON, 0.999, queued(NOON, 60 + 60 * 0.999)),
    # Temporary on the last attempt, or past it (max_attempts lowered meanwhile): error.
    (T, 3, PLAIN, NOON, 0.0, ERROR),
    (T, 4, PLAIN, NOON, 0.0, ERROR),
    # The cap: a policy allowing many attempts never waits longer than cap_seconds.
    (T, 12, SendPolicy(max_attempts=20, retry=RETRY), NOON, 1.0, queued(NOON, 600)),
    # Quiet hours: a retry due in them waits for their end; outside them it is unchanged.
    (T, 1, QUIET, NOON, 0.0, queued(NOON, 30)),
    (T, 2, SendPolicy(max_attempts=9, retry=RetryPolicy(600, 600)), EVENING, 0.0,
     queued(EVENING, 300)),
    (T, 2, SendPolicy(max_attempts=9, retry=RetryPolicy(1200, 1200), quiet=QUIET.quiet, zone=CPH),
     EVENING, 0.0, NextStep(MessageStatus.QUEUED, MORNING_AFTER)),
    (T, 3, QUIET, EVENING, 0.0, ERROR),
    # ...unless the gateway schedules (it is handed the text at once; quiet hours are its own).
    (T, 2, SendPolicy(max_attempts=9, retry=RetryPolicy(1200, 1200), quiet=QUIET.quiet, zone=CPH,
                      schedules=True), EVENING, 0.0, queued(EVENING, 600)),
    # Held for a missing secret: queued again after the hold, never the error queue, whatever
    # the attempts, the jitter or the quiet hours.
    (H, 1, PLAIN, NOON, 0.0, queued(NOON + HOLD_FOR_MISSING_SECRET)),
    (H, 3, PLAIN, NOON, 0.0, queued(NOON + HOLD_FOR_MISSING_SECRET)),
    (H, 7, PLAIN, NOON, 0.9, queued(NOON + HOLD_FOR_MISSING_SECRET)),
    (H, 3, QUIET, EVENING, 0.0, queued(EVENING + HOLD_FOR_MISSING_SECRET)),
]  # fmt: skip


@pytest.mark.parametrize(("kind", "attempts", "policy", "finished", "jitter", "expected"), TABLE)
def test_decide(
    kind: AttemptOutcome,
    attempts: int,
    policy: SendPolicy,
    finished: dt.datetime,
    jitter: float,
    expected: NextStep,
) -> None:
    assert decide(kind, attempts, policy, finished, jitter) == expected


def test_every_attempt_kind_is_in_the_table() -> None:
    assert {row[0] for row in TABLE} == set(AttemptOutcome)


def test_only_a_hold_gives_its_attempt_back() -> None:
    assert frozenset({AttemptOutcome.HELD}) == GIVES_BACK_ATTEMPT
