"""Message status transitions, retry backoff and quiet hours as tables."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from patronlink.domain.errors import Conflict
from patronlink.domain.outbox import (
    MessageStatus,
    QuietHours,
    RetryPolicy,
    can_move,
    next_step_after_temporary,
    require_move,
    statuses_that_can_become,
)

Q, S, OK, ERR, X = (
    MessageStatus.QUEUED,
    MessageStatus.SENDING,
    MessageStatus.SENT,
    MessageStatus.ERROR,
    MessageStatus.CANCELLED,
)


@pytest.mark.parametrize(
    ("current", "target", "allowed"),
    [
        (Q, S, True), (Q, X, True), (Q, OK, False), (Q, ERR, False),
        (S, OK, True), (S, Q, True), (S, ERR, True), (S, X, False),
        (ERR, Q, True), (ERR, X, True), (ERR, OK, False),
        (OK, Q, False), (OK, X, False), (X, Q, False), (X, S, False),
    ],
)  # fmt: skip
def test_transitions(current: MessageStatus, target: MessageStatus, allowed: bool) -> None:
    assert can_move(current, target) is allowed
    if not allowed:
        with pytest.raises(Conflict, match=f"{current.value} cannot become {target.value}"):
            require_move(current, target)


def test_what_staff_may_retry_and_cancel() -> None:
    assert statuses_that_can_become(MessageStatus.QUEUED) == {S, ERR}
    assert statuses_that_can_become(MessageStatus.CANCELLED) == {Q, ERR}


@pytest.mark.parametrize(
    ("attempts", "random_unit", "seconds"),
    [(1, 0.0, 15), (1, 0.999999, 29.99997), (2, 0.0, 30), (3, 0.5, 90), (10, 0.0, 1800),
     (60, 1.0 - 1e-9, 3600)],
)  # fmt: skip
def test_backoff_is_exponential_with_equal_jitter_and_capped(
    attempts: int, random_unit: float, seconds: float
) -> None:
    delay = RetryPolicy(base_seconds=30, cap_seconds=3600).delay(attempts, random_unit)
    assert delay.total_seconds() == pytest.approx(seconds, rel=1e-6)


@given(
    st.integers(min_value=0, max_value=10_000),
    st.floats(min_value=0, max_value=1, exclude_max=True),
)
def test_backoff_stays_within_half_and_whole_ceiling(attempts: int, unit: float) -> None:
    policy = RetryPolicy(base_seconds=30, cap_seconds=3600)
    ceiling = min(3600, 30 * 2 ** min(max(attempts - 1, 0), 30))
    assert ceiling / 2 <= policy.delay(attempts, unit).total_seconds() <= ceiling


@pytest.mark.parametrize(
    ("made", "limit", "status"), [(1, 5, Q), (4, 5, Q), (5, 5, ERR), (6, 5, ERR)]
)
def test_last_attempt_goes_to_error_queue(made: int, limit: int, status: MessageStatus) -> None:
    assert next_step_after_temporary(made, limit) is status


CPH = ZoneInfo("Europe/Copenhagen")


def local(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=CPH)


@pytest.mark.parametrize(
    ("when", "released"),
    [
        (local(2026, 11, 23, 12, 0), local(2026, 11, 23, 12, 0)),  # daytime: as is
        (local(2026, 11, 23, 20, 59), local(2026, 11, 23, 20, 59)),
        (local(2026, 11, 23, 21, 0), local(2026, 11, 24, 8, 0)),  # evening: next morning
        (local(2026, 11, 23, 23, 30), local(2026, 11, 24, 8, 0)),
        (local(2026, 11, 24, 3, 0), local(2026, 11, 24, 8, 0)),  # night: this morning
        (local(2026, 11, 24, 8, 0), local(2026, 11, 24, 8, 0)),
        (local(2026, 3, 28, 22, 0), local(2026, 3, 29, 8, 0)),  # across the DST change
    ],
)
def test_quiet_hours_over_midnight(when: dt.datetime, released: dt.datetime) -> None:
    quiet = QuietHours.parse("21:00-08:00")
    result = quiet.release_time(when.astimezone(dt.UTC), CPH)
    assert result == released
    assert result.tzinfo is not None


def test_quiet_hours_within_a_day() -> None:
    quiet = QuietHours.parse("12:00-13:00")
    assert quiet.release_time(local(2026, 1, 5, 12, 30), CPH) == local(2026, 1, 5, 13, 0)
    assert quiet.release_time(local(2026, 1, 5, 13, 0), CPH) == local(2026, 1, 5, 13, 0)
