"""The worker process: the SMS dispatcher (and the import scheduler) until told to stop."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import os

from prometheus_client import CollectorRegistry

from patronlink.domain.outbox import RetryPolicy
from patronlink.gateways.registry import build_gateway
from patronlink.services.clock import Clock
from patronlink.services.import_patrons import LEASE, RunObserver
from patronlink.settings import Settings
from patronlink.storage.database import Database
from patronlink.worker.dispatcher import Dispatcher, DispatchSettings, DispatchStats
from patronlink.worker.metrics import DispatchMetrics
from patronlink.worker.scheduler import run_due_imports

log = logging.getLogger("patronlink.worker")


def dispatch_settings(settings: Settings) -> DispatchSettings:
    return DispatchSettings(
        batch_size=settings.dispatch_batch_size,
        max_in_flight=settings.dispatch_max_in_flight,
        lease_seconds=settings.dispatch_lease_seconds,
        poll_seconds=settings.dispatch_poll_seconds,
        retry=RetryPolicy(settings.retry_base_seconds, settings.retry_cap_seconds),
    )


async def run_worker(
    db: Database,
    settings: Settings,
    clock: Clock,
    stop: asyncio.Event,
    *,
    once: bool = False,
    registry: CollectorRegistry | None = None,
    import_observer: RunObserver | None = None,
) -> DispatchStats:
    """The dispatcher, and beside it the import scheduler (not with ``once``)."""
    dispatcher = Dispatcher(
        db,
        clock,
        build_gateway,
        settings=dispatch_settings(settings),
        environ=os.environ,
        metrics=DispatchMetrics(registry) if registry is not None else None,
        public_url=settings.callback_base(),
    )
    log.info("worker started", extra={"owner": dispatcher.owner, "once": once})
    scheduler = None
    if not once:
        scheduler = asyncio.create_task(
            run_scheduler(
                db,
                clock,
                stop,
                settings.scheduler_interval_seconds,
                import_observer,
                lease=dt.timedelta(seconds=settings.import_lease_seconds),
            )
        )
    try:
        return await dispatcher.run(stop, once=once)
    finally:
        await dispatcher.aclose()
        if scheduler is not None:
            await scheduler
        log.info("worker stopped", extra={"owner": dispatcher.owner})


async def run_scheduler(
    db: Database,
    clock: Clock,
    stop: asyncio.Event,
    interval: float,
    observer: RunObserver | None = None,
    *,
    lease: dt.timedelta = LEASE,
) -> None:
    """Start due imports every ``interval`` seconds until ``stop``; a failure is logged, not fatal.

    Runs happen in a thread, one after another, so a long import never holds up dispatch.
    """
    while not stop.is_set():
        try:
            await asyncio.to_thread(
                run_due_imports, db, clock, os.environ, observer=observer, lease=lease
            )
        except Exception:
            log.exception("import scheduler round failed; trying again next round")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval)
