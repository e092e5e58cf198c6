"""Staff API: the log of inbound SMS (renewal requests), newest first."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel

from patronlink.domain import phone
from patronlink.domain.paging import Paged
from patronlink.services.agencies import require_agency
from patronlink.web.deps import AgencyDep, DbDep, refuse_nul_in_url
from patronlink.web.paging import PAGED_HEADERS, set_page_headers
from patronlink.web.schemas import ErrorOut, Offset

router = APIRouter(
    prefix="/api/v1/agencies/{agency_id}/inbound-sms",
    tags=["inbound sms"],
    dependencies=[Depends(refuse_nul_in_url)],
    responses={401: {"model": ErrorOut}, 403: {"model": ErrorOut}, 404: {"model": ErrorOut}},
)


class InboundOut(BaseModel):
    id: int
    received_at: dt.datetime
    number: str
    shortcode: str
    text: str
    command: str | None
    patrons_matched: list[str]
    outcome: str
    renewed: int
    refused: int
    replies: list[int]

    @classmethod
    def of(cls, row: dict[str, Any]) -> InboundOut:
        return cls(**{k: row[k] for k in cls.model_fields})


@router.get("", response_model=list[InboundOut], responses={200: {"headers": PAGED_HEADERS}})
def inbound_log(
    agency: AgencyDep,
    db: DbDep,
    request: Request,
    response: Response,
    number: Annotated[str | None, Query(max_length=40)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Offset = 0,
) -> list[InboundOut]:
    with db.transaction() as repos:
        found = require_agency(repos, agency)
        e164 = phone.normalise(number, found.country_code, field="number") if number else None
        rows = repos.inbound.search(found.id, number=e164, limit=limit, offset=offset)
        total = repos.inbound.count(found.id, number=e164)
    set_page_headers(request, response, Paged(rows, total, offset, limit))
    return [InboundOut.of(r) for r in rows]
