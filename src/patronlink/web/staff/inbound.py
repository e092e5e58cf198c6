"""The log of inbound SMS (renewal requests), newest first."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from starlette.responses import Response

from patronlink.web.staff.pages import StaffDep

router = APIRouter(prefix="/staff")
PAGE_SIZE = 200


@router.get("/inbound")
def inbound_log(
    page: StaffDep,
    agency: Annotated[str, Query(max_length=32)] = "",
    number: Annotated[str, Query(max_length=40)] = "",
) -> Response:
    scope = page.agency_scope(agency)
    e164 = page.phone_number(number, scope) if number.strip() else None
    with page.db.transaction() as repos:
        if scope is not None:
            rows = repos.inbound.search(scope, number=e164, limit=PAGE_SIZE)
        else:
            rows = [
                r
                for a in repos.agencies.list()
                for r in repos.inbound.search(a.id, number=e164, limit=PAGE_SIZE)
            ]
            rows.sort(key=lambda r: r["received_at"], reverse=True)
    return page.render(
        "inbound.html",
        title=page.t("inbound"),
        rows=rows[:PAGE_SIZE],
        agencies=page.agencies(),
        filters={"agency": scope or "", "number": number},
    )
