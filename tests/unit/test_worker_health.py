"""The worker's loops: back-off, one log line per episode of failures, what /readyz is told."""

from __future__ import annotations

import logging

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError

from patronlink.storage.failures import describe, is_unavailable
from patronlink.worker.health import Backoff, Health, Loop


@given(
    failures=st.integers(min_value=1, max_value=10_000),
    draw=st.floats(min_value=0, max_value=1, exclude_max=True),
    cap=st.floats(min_value=0.01, max_value=3600),
)
def test_backoff_stays_within_half_and_all_of_its_doubling_ceiling(
    failures: int, draw: float, cap: float
) -> None:
    backoff = Backoff(base=0.5, cap=cap)
    ceiling = min(cap, 0.5 * 2 ** min(failures - 1, 30))
    delay = backoff.delay(failures, draw)
    assert ceiling / 2 <= delay <= ceiling
    assert delay <= cap


def test_backoff_doubles_up_to_the_cap() -> None:
    backoff = Backoff(base=0.5, cap=4)
    assert [backoff.delay(n, 0.999999) for n in range(1, 6)] == pytest.approx(
        [0.5, 1, 2, 4, 4], rel=1e-5
    )


class Ticks:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _operational(message: str = "connection refused") -> OperationalError:
    return OperationalError("SELECT 1", {}, Exception(message))


def test_an_episode_is_one_error_line_with_the_traceback_and_one_recovery_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="patronlink.test")
    loop = Loop("dispatcher", logging.getLogger("patronlink.test"), Backoff(), None)
    for _ in range(7):
        try:
            raise _operational()
        except OperationalError as exc:
            loop.failed(exc)
    assert "failing since" in (loop.problem() or "")
    loop.progress()
    loop.progress()
    assert loop.problem() is None

    errors = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(errors) == 1
    assert errors[0].levelno == logging.ERROR
    assert errors[0].exc_info is not None
    infos = [r for r in caplog.records if r.levelno == logging.INFO]
    assert len(infos) == 1
    assert "recovered after 7 failure(s)" in infos[0].getMessage()


def test_health_reports_stopped_failing_and_stalled_loops() -> None:
    ticks = Ticks()
    health = Health()
    log = logging.getLogger("patronlink.test")
    quick = health.loop("dispatcher", log, stall_seconds=60)
    quick.monotonic = ticks
    quick.progress()
    patient = health.loop("scheduler", log)
    assert health.problems() == []

    ticks.now += 61
    assert health.problems() == ["dispatcher has made no progress for 61 s"]
    quick.progress()
    patient.failed(_operational("the connection is lost"))
    assert health.problems()[0].startswith("scheduler failing since")
    assert "OperationalError" not in health.problems()[0]  # the driver's error, not the wrapper
    assert "the connection is lost" in health.problems()[0]
    patient.stop("KeyError: 'x'")
    assert health.problems() == ["scheduler stopped: KeyError: 'x'"]


@pytest.mark.parametrize(
    ("error", "unavailable"),
    [
        (_operational(), True),
        (ConnectionResetError(), True),
        (ProgrammingError("SELECT", {}, Exception('relation "messages" does not exist')), False),
        (IntegrityError("INSERT", {}, Exception("duplicate key")), False),
        (KeyError("bug"), False),
    ],
)
def test_which_failures_are_waited_out(error: BaseException, unavailable: bool) -> None:
    assert is_unavailable(error) is unavailable


def test_a_failure_is_described_without_its_statement_or_parameters() -> None:
    error = OperationalError(
        "UPDATE messages SET text = %(t)s", {"t": "Horsens forny alle"}, Exception("gone\nmore")
    )
    assert describe(error) == "Exception: gone"
