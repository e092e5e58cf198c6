"""The worker process: the SMS dispatcher (and the import scheduler) until told to stop."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
from collections.abc import Mapping
from typing import Any

from prometheus_client import CollectorRegistry

from patronlink.bootstrap import GatewayFactory, process_environ
from patronlink.domain.audit import SYSTEM
from patronlink.domain.dispatch import DispatchSettings
from patronlink.domain.outbox import RetryPolicy
from patronlink.gateways.registry import build_gateway
from patronlink.services.circulation import expire_uncollected_reservations
from patronlink.services.clock import Clock
from patronlink.services.import_patrons import LEASE, RunObserver
from patronlink.services.patron_lifecycle import apply_retention
from patronlink.services.sms_pause import pause_sending
from patronlink.settings import Settings
from patronlink.storage.database import Database
from patronlink.worker.dispatcher import Dispatcher, DispatchStats
from patronlink.worker.health import Backoff, Health, Loop
from patronlink.worker.metrics import DispatchMetrics
from patronlink.worker.scheduler import run_due_imports

log = logging.getLogger("patronlink.worker")


class WorkerFailed(Exception):
    """A loop of the worker met a failure it cannot carry on after; the process should end
    (non-zero) for its supervisor to start it again."""


def dispatch_settings(settings: Settings) -> DispatchSettings:
    return DispatchSettings(
        batch_size=settings.dispatch_batch_size,
        max_in_flight=settings.dispatch_max_in_flight,
        lease_seconds=settings.dispatch_lease_seconds,
        poll_seconds=settings.dispatch_poll_seconds,
        retry=RetryPolicy(settings.retry_base_seconds, settings.retry_cap_seconds),
        gateway_failures_before_warning=settings.gateway_failures_before_warning,
        max_age_seconds=settings.dispatch_max_age_seconds,
    )


def worker_health(settings: Settings) -> Health:
    """The health of a worker's loops, backing off at most ``PATRONLINK_BACKOFF_CAP_SECONDS``."""
    return Health(Backoff(cap=settings.backoff_cap_seconds))


async def run_worker(
    db: Database,
    settings: Settings,
    clock: Clock,
    stop: asyncio.Event,
    *,
    once: bool = False,
    registry: CollectorRegistry | None = None,
    import_observer: RunObserver | None = None,
    health: Health | None = None,
    dispatch_metrics: DispatchMetrics | None = None,
    environ: Mapping[str, str] | None = None,
    gateways: GatewayFactory | None = None,
) -> DispatchStats:
    """The dispatcher, and beside it the import scheduler (not with ``once``).

    Both survive the database going away (they back off and carry on, ``health`` says how they
    are). When either ends with a failure it cannot carry on after, the other is stopped too and
    ``WorkerFailed`` is raised: a worker that no longer sends must not look alive.

    ``environ`` is where ``${VAR}`` secrets of gateways and import sources resolve from (the
    process's environment unless given), ``gateways`` builds the SMS gateways (the registry's
    unless given).
    """
    env = process_environ() if environ is None else environ
    health = health or worker_health(settings)
    # The idle dispatcher goes round every poll; a busy one every flush. A minute without a
    # round is a loop stuck, not a slow one.
    stall = max(60.0, 10 * settings.dispatch_poll_seconds)
    dispatcher = Dispatcher(
        db,
        clock,
        gateways or build_gateway,
        settings=dispatch_settings(settings),
        environ=env,
        metrics=dispatch_metrics or (DispatchMetrics(registry) if registry is not None else None),
        health=health.loop("dispatcher", log, stall_seconds=stall),
        public_url=settings.callback_base(),
    )
    if settings.start_paused:
        # Before the first claim: a restored backup must not send a single text (issue 14).
        await asyncio.to_thread(
            pause_sending,
            db,
            None,
            f"PATRONLINK_START_PAUSED ({dispatcher.owner})",
            clock,
            reason="started paused",
        )
        log.warning(
            "sending is paused for every agency (PATRONLINK_START_PAUSED): "
            "`patronlink sms resume` sends the queued texts"
        )
    log.info("worker started", extra={"owner": dispatcher.owner, "once": once})
    # A stop of our own when one loop dies, so that the other ends as well.
    halt = asyncio.Event()
    relay = asyncio.create_task(_relay(stop, halt))
    loops: dict[str, asyncio.Task[Any]] = {
        "dispatcher": asyncio.create_task(dispatcher.run(halt, once=once))
    }
    if not once:
        scheduler_loop = health.loop("scheduler", log)
        loops["scheduler"] = asyncio.create_task(
            run_scheduler(
                db,
                clock,
                halt,
                settings.scheduler_interval_seconds,
                import_observer,
                lease=dt.timedelta(seconds=settings.import_lease_seconds),
                health=scheduler_loop,
                environ=env,
            )
        )
    failed: list[tuple[str, BaseException]] = []
    try:
        pending = set(loops.values())
        while pending:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for name, task in loops.items():
                if task in done and not task.cancelled() and task.exception() is not None:
                    error = task.exception()
                    assert error is not None
                    failed.append((name, error))
                    health.loops[name].stop(f"{type(error).__name__}: {error}")
                    halt.set()
                elif task in done:
                    health.loops[name].stop("stopped")
                    halt.set()
    finally:
        relay.cancel()
        halt.set()
        for task in loops.values():
            if not task.done():
                task.cancel()
        await asyncio.gather(*loops.values(), return_exceptions=True)
        await dispatcher.aclose()
        log.info("worker stopped", extra={"owner": dispatcher.owner})
    if failed:
        name, error = failed[0]
        reason = f"{type(error).__name__}: {error}"
        raise WorkerFailed(f"the {name} cannot carry on: {reason}") from error
    return loops["dispatcher"].result()  # type: ignore[no-any-return]


async def _relay(source: asyncio.Event, target: asyncio.Event) -> None:
    await source.wait()
    target.set()


# How often a worker applies the agencies' retention rules (issue 18) and expires the reservations
# not collected by their pickup deadline: neither is urgent, and each round reads every agency.
RETENTION_INTERVAL_SECONDS = 3600.0


async def run_scheduler(
    db: Database,
    clock: Clock,
    stop: asyncio.Event,
    interval: float,
    observer: RunObserver | None = None,
    *,
    lease: dt.timedelta = LEASE,
    health: Loop | None = None,
    environ: Mapping[str, str] | None = None,
) -> None:
    """Start due imports every ``interval`` seconds until ``stop``; a failure is logged (once
    while it lasts), not fatal: the next round comes after a back-off, at most ``interval``.

    Runs happen in a thread, one after another, so a long import never holds up dispatch.
    """
    env = process_environ() if environ is None else environ
    loop = health or Loop("scheduler", log, Backoff(), stall_seconds=None)
    retention_due_at = 0.0  # monotonic; the first round applies it
    while not stop.is_set():
        wait = interval
        try:
            await asyncio.to_thread(run_due_imports, db, clock, env, observer=observer, lease=lease)
        except Exception as exc:  # noqa: BLE001 - an import bug must not stop the sends
            wait = min(interval, loop.failed(exc))
        else:
            loop.progress()
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
            try:
                late = await asyncio.to_thread(expire_uncollected_reservations, db, clock)
                for agency_id, ids in late.items():
                    log.info(
                        "reservations not collected by their pickup deadline expired",
                        extra={"agency": agency_id, "count": len(ids)},
                    )
            except Exception:
                log.exception("expiring uncollected reservations failed; trying again in an hour")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=wait)
