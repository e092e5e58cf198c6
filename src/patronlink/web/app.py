"""The application factory: one app per call, built from explicit settings and services."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from patronlink import __version__
from patronlink.services.clock import Clock, system_clock
from patronlink.services.import_metrics import ImportMetrics
from patronlink.services.secrets import VerifiedPasswords
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
    rest_dlf,
    sms_gateway,
)
from patronlink.web.docs import install_docs
from patronlink.web.errors import install_error_handlers
from patronlink.web.limits import BodyLimit
from patronlink.web.observability import AccessLog, Metrics
from patronlink.web.sms_gateway import InboundBatcher, Throttle
from patronlink.web.staff import install as install_staff_ui
from patronlink.worker.metrics import QueueDepthCollector

MAX_BODY_BYTES = 1024 * 1024


def create_app(
    settings: Settings, db: Database, clock: Clock = system_clock, *, run_worker: bool = False
) -> FastAPI:
    """The app; with ``run_worker`` the SMS worker runs in the same process (``serve``)."""
    metrics = Metrics()
    metrics.registry.register(QueueDepthCollector(db, clock))
    import_metrics = ImportMetrics(metrics.registry)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if not run_worker:
            yield
            return
        from patronlink.worker.runner import run_worker as worker_loop

        stop = asyncio.Event()
        task = asyncio.create_task(
            worker_loop(
                db,
                settings,
                clock,
                stop,
                registry=metrics.registry,
                import_observer=import_metrics,
            )
        )
        try:
            yield
        finally:
            stop.set()
            await task

    app = FastAPI(
        lifespan=lifespan,
        docs_url=None,  # served below from the installed swagger-ui-bundle, not a CDN
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
    app.state.passwords = VerifiedPasswords()
    app.state.inbound_throttle = Throttle(
        settings.inbound_failures_before_throttle, settings.inbound_throttle_seconds
    )
    app.state.inbound_batcher = InboundBatcher(db, app.state.passwords, clock)
    install_error_handlers(app)
    install_docs(app)
    # Routes are matched in order: the SMS provider's callback, which comes under load, first.
    app.include_router(sms_gateway.router)
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
    app.add_middleware(AccessLog, metrics=app.state.metrics)
    return app
