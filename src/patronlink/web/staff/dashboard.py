"""The dashboard (the page staff keep open) and the stylesheet."""

from __future__ import annotations

import functools
from importlib.resources import files
from typing import Annotated

from fastapi import APIRouter, Query
from starlette.responses import Response

from patronlink.services.alerts import current_alerts
from patronlink.services.dashboard import dashboard
from patronlink.web.staff.pages import StaffDep

router = APIRouter(prefix="/staff")


@router.get("")
def show_dashboard(
    page: StaffDep, agency: Annotated[str | None, Query(max_length=32)] = None
) -> Response:
    scope = page.agency_scope(agency)
    return page.render(
        "dashboard.html",
        title=page.t("dashboard"),
        figures=dashboard(page.db, scope, page.clock()),
        alerts=current_alerts(page.db, scope, page.clock()),
        agencies=page.agencies(),
        agency=scope or "",
    )


@functools.cache
def _stylesheet() -> bytes:
    return files("patronlink.web").joinpath("static/staff.css").read_bytes()


@router.get("/static/staff.css")
def stylesheet() -> Response:
    return Response(
        _stylesheet(),
        media_type="text/css",
        headers={"Cache-Control": "public, max-age=3600", "X-Content-Type-Options": "nosniff"},
    )


@functools.cache
def _script() -> bytes:
    return files("patronlink.web").joinpath("static/staff.js").read_bytes()


@router.get("/static/staff.js")
def script() -> Response:
    """Progressive enhancement only ("select all on this page"); every page works without it."""
    return Response(
        _script(),
        media_type="text/javascript",
        headers={"Cache-Control": "public, max-age=3600", "X-Content-Type-Options": "nosniff"},
    )
