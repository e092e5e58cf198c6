"""The worker's loops watched: alive, making progress, or failing (and then logged once).

Each loop of a worker process (the dispatcher, the import scheduler) holds a ``Loop`` from the
process's ``Health``. It calls ``progress()`` every time round and ``failed(exc)`` when a
dependency let it down; ``failed`` logs the first failure of an episode at error level with the
traceback, stays quiet (debug) while the failures go on, and says how long to back off. The next
``progress()`` ends the episode with one line at info level. ``/readyz`` asks ``Health`` what is
wrong: a loop failing, stopped, or not round for longer than it may take.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from patronlink.storage.database import describe

BACKOFF_BASE_SECONDS = 0.5


@dataclass(frozen=True)
class Backoff:
    """Delays after failures in a row: doubling from ``base``, at most ``cap``, the upper half
    random so that many processes that lost the database together do not return together."""

    base: float = BACKOFF_BASE_SECONDS
    cap: float = 30.0

    def delay(self, failures: int, draw: float) -> float:
        """The wait after the ``failures``-th failure in a row (1, 2, ...); ``draw`` in [0, 1)."""
        ceiling = min(self.cap, math.ldexp(self.base, max(0, min(failures - 1, 30))))
        return ceiling / 2 + ceiling / 2 * draw


@dataclass
class Loop:
    """One loop's state, as its ``Health`` reports it."""

    name: str
    log: logging.Logger
    backoff: Backoff
    stall_seconds: float | None  # None: the loop may take any time between rounds
    monotonic: Callable[[], float] = time.monotonic
    rng: Callable[[], float] = random.random
    last_progress: float = field(init=False)
    failures: int = 0  # in a row: the current episode
    failing_since: dt.datetime | None = None
    last_error: str | None = None
    stopped: str | None = None  # why the loop ended, once it has

    def __post_init__(self) -> None:
        self.last_progress = self.monotonic()

    def progress(self) -> None:
        """The loop went round: any episode of failures is over."""
        self.last_progress = self.monotonic()
        if self.failures:
            self.log.info(
                "%s: recovered after %d failure(s) since %s",
                self.name,
                self.failures,
                self.failing_since.isoformat() if self.failing_since else "?",
                extra={"loop": self.name, "failures": self.failures},
            )
            self.failures = 0
            self.failing_since = None
            self.last_error = None

    def failed(self, error: BaseException) -> float:
        """Record a failure; logged (error level, with the traceback) only when it starts an
        episode. Returns the seconds to back off."""
        self.failures += 1
        self.last_error = describe(error)
        if self.failures == 1:
            self.failing_since = dt.datetime.now(dt.UTC)
            self.log.error(
                "%s: %s; backing off and trying again",
                self.name,
                self.last_error,
                exc_info=error,
                extra={"loop": self.name},
            )
        else:
            self.log.debug(
                "%s: still failing (%d in a row): %s",
                self.name,
                self.failures,
                self.last_error,
                extra={"loop": self.name, "failures": self.failures},
            )
        return self.backoff.delay(self.failures, self.rng())

    def stop(self, reason: str) -> None:
        self.stopped = reason

    def problem(self) -> str | None:
        """What is wrong with this loop now, or None."""
        if self.stopped is not None:
            return f"{self.name} stopped: {self.stopped}"
        if self.failures:
            since = self.failing_since.isoformat() if self.failing_since else "?"
            return f"{self.name} failing since {since}: {self.last_error}"
        idle = self.monotonic() - self.last_progress
        if self.stall_seconds is not None and idle > self.stall_seconds:
            return f"{self.name} has made no progress for {idle:.0f} s"
        return None


class Health:
    """Every loop of one process, for ``/readyz`` and the liveness metrics."""

    def __init__(self, backoff: Backoff | None = None) -> None:
        self.backoff = backoff or Backoff()
        self.loops: dict[str, Loop] = {}

    def loop(self, name: str, log: logging.Logger, *, stall_seconds: float | None = None) -> Loop:
        """A fresh ``Loop`` under ``name`` (replacing a previous one of that name: a restart)."""
        made = Loop(name, log, self.backoff, stall_seconds)
        self.loops[name] = made
        return made

    def problems(self) -> list[str]:
        # Read from request threads while the event loop may start a loop again: list() copies
        # the values at once (under the interpreter lock), iteration would not.
        return [p for loop in list(self.loops.values()) if (p := loop.problem()) is not None]
