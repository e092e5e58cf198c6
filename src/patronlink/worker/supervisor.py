"""The worker inside ``patronlink serve``: started again, with back-off, whenever it dies.

``patronlink worker`` ends the process when a loop cannot carry on, for the system's supervisor
to start it again. Inside ``serve`` the HTTP side would stay up and hide a dead worker, so the
worker is watched here instead: its death is logged at error level with the traceback, shows in
``/readyz`` (503, with the reason) until it runs again, and it is started again after a back-off
that grows while it keeps dying and starts over once it has run for a while.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any

from patronlink.worker.health import Health, Loop

log = logging.getLogger("patronlink.worker")

WorkerStart = Callable[[asyncio.Event], Coroutine[Any, Any, Any]]

# A worker that ran this long before dying counts as healthy: the back-off starts over.
STEADY_SECONDS = 60.0


class WorkerSupervisor:
    """Runs ``start(stop)`` until ``stop`` is set, and again each time it ends early."""

    def __init__(
        self, start: Callable[[asyncio.Event], Coroutine[Any, Any, Any]], health: Health
    ) -> None:
        self.start = start
        self.health = health
        self.loop: Loop = health.loop("worker", log)
        self.task: asyncio.Task[Any] | None = None  # the running worker (tests kill it)
        self.restarts = 0

    async def run(self, stop: asyncio.Event) -> None:
        deaths = 0
        while not stop.is_set():
            started = time.monotonic()
            self.loop.stopped = None
            self.task = asyncio.create_task(self.start(stop))
            try:
                await asyncio.wait({self.task})
            except asyncio.CancelledError:
                self.task.cancel()
                with contextlib.suppress(BaseException):
                    await self.task
                raise
            reason = self._reason(self.task)
            if reason is None and stop.is_set():
                return
            if time.monotonic() - started > STEADY_SECONDS:
                deaths = 0
            deaths += 1
            delay = self.health.backoff.delay(deaths, self.loop.rng())
            reason = reason or "it ended without being stopped"
            self.loop.stop(f"{reason}; starting it again in {delay:.1f} s")
            error = None if self.task.cancelled() else self.task.exception()
            log.error(
                "the worker in this process died: %s; starting it again in %.1f s",
                reason,
                delay,
                exc_info=error,
                extra={"restart_in_seconds": round(delay, 2), "deaths_in_a_row": deaths},
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=delay)
            self.restarts += 1

    @staticmethod
    def _reason(task: asyncio.Task[Any]) -> str | None:
        if task.cancelled():
            return "it was cancelled"
        error = task.exception()
        if error is None:
            return None
        return f"{type(error).__name__}: {error}"
