"""The worker process: the SMS dispatcher (and the import scheduler) until told to stop."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import os
import time

from prometheus_client import CollectorRegistry

from patronlink.domain.audit import SYSTEM
from patronlink.domain.outbox import RetryPolicy
from patronlink.gateways.registry import build_gateway
from patronlink.services.clock import Clock
from patronlink.services.import_patrons import LEASE, RunObserver
from patronlink.services.patron_lifecycle import apply_retention
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


# How often a worker applies the agencies' retention rules (issue 18): anonymisation by age is
# not urgent, and each round reads every agency's patrons past the cut-off.
RETENTION_INTERVAL_SECONDS = 3600.0


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
    retention_due_at = 0.0  # monotonic; the first round applies it
    while not stop.is_set():
        try:
            await asyncio.to_thread(
                run_due_imports, db, clock, os.environ, observer=observer, lease=lease
            )
        except Exception:
            log.exception("import scheduler round failed; trying again next round")
        if time.monotonic() >= retention_due_at:
            retention_due_at = time.monotonic() + RETENTION_INTERVAL_SECONDS
            try:
                results = await asyncio.to_thread(
                    apply_retention, db, clock, dry_run=False, actor=SYSTEM
                )
                for r in results:
                    if r.patron_ids:
                        log.info(
                            "patrons anonymised by the retention rule",
                            extra={"agency": r.agency_id, "count": len(r.patron_ids)},
                        )
            except Exception:
                log.exception("retention round failed; trying again in an hour")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval)
