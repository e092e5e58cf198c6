"""The log of inbound SMS (renewal requests), newest first."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from starlette.responses import Response

from patronlink.domain.paging import MAX_PAGE
from patronlink.services.inbound_log import log_page
from patronlink.web.staff.pages import StaffDep

router = APIRouter(prefix="/staff")
PAGE_SIZE = 100


@router.get("/inbound")
def inbound_log(
    page: StaffDep,
    agency: Annotated[str, Query(max_length=32)] = "",
    number: Annotated[str, Query(max_length=40)] = "",
    offset: Annotated[int, Query(ge=0, le=2**62)] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = PAGE_SIZE,
) -> Response:
    scope = page.agency_scope(agency)  # None only for an administrator: every agency
    e164 = page.phone_number(number, scope) if number.strip() else None
    paged = log_page(page.db, scope, number=e164, limit=limit, offset=offset)
    return page.render(
        "inbound.html",
        title=page.t("inbound"),
        rows=paged.items,
        pager=page.pager(paged),
        agencies=page.agencies(),
        filters={"agency": scope or "", "number": number},
    )
