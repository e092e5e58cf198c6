"""The application factory: one app per call, built from the parts the composition root
(``bootstrap``) or a test gives it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from patronlink import __version__
from patronlink.bootstrap import GatewayFactory, process_environ
from patronlink.services.clock import Clock, system_clock
from patronlink.services.import_metrics import ImportMetrics
from patronlink.services.secrets import VerifiedPasswords
from patronlink.services.throttle import login_throttle
from patronlink.settings import Settings
from patronlink.storage.database import Database
from patronlink.web import (
    api,
    audit_api,
    circulation_api,
    health,
    imports_api,
    inbound_api,
    messages_api,
    patron_lifecycle_api,
    provider_callbacks,
    rest_dlf,
    sms_gateway,
)
from patronlink.web.docs import install_docs
from patronlink.web.errors import install_error_handlers
from patronlink.web.limits import BodyLimit
from patronlink.web.observability import AccessLog, Metrics
from patronlink.web.provider_callbacks import DeliveryReportMetrics, ReportBatcher
from patronlink.web.sms_gateway import InboundBatcher
from patronlink.web.staff import install as install_staff_ui
from patronlink.worker.health import Backoff, Health
from patronlink.worker.metrics import (
    DeliveryCollector,
    DispatchMetrics,
    LoopHealthCollector,
    QueueDepthCollector,
)
from patronlink.worker.supervisor import WorkerSupervisor

MAX_BODY_BYTES = 1024 * 1024


def create_app(
    settings: Settings,
    db: Database,
    clock: Clock = system_clock,
    *,
    run_worker: bool = False,
    environ: Mapping[str, str] | None = None,
    gateways: GatewayFactory | None = None,
) -> FastAPI:
    """The app; with ``run_worker`` the SMS worker runs in the same process (``serve``).

    ``environ`` is where ``${VAR}`` secrets resolve from (the process's environment unless
    given); ``gateways`` builds the in-process worker's SMS gateways (the registry's unless
    given)."""
    env = process_environ() if environ is None else environ
    metrics = Metrics()
    metrics.registry.register(QueueDepthCollector(db, clock))
    import_metrics = ImportMetrics(metrics.registry)
    # Made once: the worker, started again after a death, counts on in the same series.
    dispatch_metrics = DispatchMetrics(metrics.registry) if run_worker else None

    # The in-process worker's loops and its supervisor report here, for /readyz.
    worker_health = Health(Backoff(cap=settings.backoff_cap_seconds)) if run_worker else None
    if worker_health is not None:
        metrics.registry.register(LoopHealthCollector(worker_health))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if worker_health is None:
            yield
            return
        from patronlink.worker.runner import run_worker as worker_loop

        def start(stop: asyncio.Event) -> Any:
            return worker_loop(
                db,
                settings,
                clock,
                stop,
                registry=metrics.registry,
                import_observer=import_metrics,
                health=worker_health,
                dispatch_metrics=dispatch_metrics,
                environ=env,
                gateways=gateways,
            )

        stop = asyncio.Event()
        supervisor = WorkerSupervisor(start, worker_health)
        app.state.worker = supervisor
        task = asyncio.create_task(supervisor.run(stop))
        try:
            yield
        finally:
            stop.set()
            await task

    app = FastAPI(
        lifespan=lifespan,
        docs_url=None,  # served below from the installed Swagger UI files, not a CDN
        title="patronlink",
        version=__version__,
        description="Patron services for library systems: the staff API, the SMS gateway "
        "callback and the Aleph-compatible New Patron API.",
    )
    app.state.settings = settings
    app.state.db = db
    app.state.clock = clock
    app.state.metrics = metrics
    app.state.import_metrics = import_metrics
    app.state.worker_health = worker_health
    _install_callbacks(app, settings, db, clock, metrics, env)
    install_error_handlers(app)
    install_docs(app)
    # Routes are matched in order: the SMS provider's callback, which comes under load, first.
    app.include_router(sms_gateway.router)
    app.include_router(provider_callbacks.router)
    app.include_router(health.router)
    app.include_router(api.router)
    app.include_router(messages_api.router)
    app.include_router(inbound_api.router)
    app.include_router(rest_dlf.router)
    app.include_router(imports_api.router)
    app.include_router(audit_api.router)
    app.include_router(patron_lifecycle_api.router)
    app.include_router(circulation_api.router)
    install_staff_ui(app, settings)
    app.add_middleware(BodyLimit, max_bytes=MAX_BODY_BYTES)
    app.add_middleware(AccessLog, metrics=app.state.metrics, patron_data=settings.log_patron_data)
    return app


def _install_callbacks(
    app: FastAPI,
    settings: Settings,
    db: Database,
    clock: Clock,
    metrics: Metrics,
    environ: Mapping[str, str],
) -> None:
    """What the endpoints that check a secret share: verified passwords, the login throttles,
    the batchers of the SMS provider's callbacks and their metrics."""
    app.state.passwords = VerifiedPasswords()
    app.state.inbound_throttle = login_throttle(
        db,
        clock,
        settings,
        "inbound",
        settings.inbound_failures_before_throttle,
        settings.inbound_throttle_seconds,
    )
    app.state.registration_throttle = login_throttle(
        db,
        clock,
        settings,
        "registration",
        settings.registration_failures_before_throttle,
        settings.registration_throttle_seconds,
    )
    app.state.inbound_batcher = InboundBatcher(
        db, app.state.passwords, clock, app.state.inbound_throttle
    )
    # Provider callbacks and "run import now": secrets written as ${VAR} resolve from here.
    app.state.environ = environ
    app.state.report_metrics = DeliveryReportMetrics(metrics.registry)
    app.state.report_batcher = ReportBatcher(
        db, app.state.passwords, clock, app.state.inbound_throttle
    )
    metrics.registry.register(DeliveryCollector(db))
