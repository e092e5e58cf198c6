"""The staff web UI under /staff: server-rendered pages that work without JavaScript."""

from __future__ import annotations

import datetime as dt
import secrets
from typing import Any

import structlog
from fastapi import APIRouter, Depends, FastAPI, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from patronlink.services.staff_sessions import SessionLimits
from patronlink.services.throttle import login_throttle
from patronlink.settings import Settings
from patronlink.web.deps import refuse_nul_in_url
from patronlink.web.staff import (
    audit,
    auth,
    dashboard,
    imports,
    inbound,
    messages,
    patron_actions,
    patrons,
    tokens,
    users,
)
from patronlink.web.staff.pages import (
    CsrfRefused,
    LoginRequired,
    StaffState,
    csrf_refused,
    login_redirect,
    templates,
)
from patronlink.web.staff.session import SessionCodec, SessionStore

log = structlog.get_logger("patronlink.staff")

# A NUL in a path or query value is a 422 page before any query (PostgreSQL cannot compare it).
router = APIRouter(include_in_schema=False, dependencies=[Depends(refuse_nul_in_url)])
for module in (
    auth,
    dashboard,
    messages,
    imports,
    inbound,
    patrons,
    patron_actions,
    audit,
    tokens,
    users,
):
    router.include_router(module.router)


def install(app: FastAPI, settings: Settings) -> None:
    """Add the staff pages to ``app``, with a session key from the settings (or a new one)."""
    key = settings.secret_key
    if key is None:
        key = secrets.token_urlsafe(48)
        log.warning(
            "PATRONLINK_SECRET_KEY is not set: using a random key, so a login form shown by "
            "one process is refused by another, and after a restart (signed-in sessions are "
            "in the database and not affected)"
        )
    limits = SessionLimits(
        idle=dt.timedelta(minutes=settings.staff_session_idle_minutes),
        absolute=dt.timedelta(hours=settings.staff_session_hours),
    )
    codec = SessionCodec(
        key, max_age_seconds=int(settings.staff_session_hours * 3600), secure=settings.cookie_secure
    )
    db, clock = app.state.db, app.state.clock
    app.state.staff = StaffState(
        sessions=SessionStore(codec, db, clock, limits),
        env=templates(),
        throttle=login_throttle(
            db,
            clock,
            settings,
            "staff",
            settings.staff_login_failures_before_throttle,
            settings.staff_login_throttle_seconds,
        ),
    )

    async def to_login(request: Request, exc: Any) -> Response:
        return await run_in_threadpool(login_redirect, request, exc)

    async def refused(request: Request, _exc: Any) -> Response:
        return await run_in_threadpool(csrf_refused, request)

    app.add_exception_handler(LoginRequired, to_login)
    app.add_exception_handler(CsrfRefused, refused)
    app.include_router(router)
