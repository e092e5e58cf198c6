"""Staff API: the log of inbound SMS (renewal requests), newest first."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel

from patronlink.services.inbound_log import agency_log_page
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
    paged = agency_log_page(db, agency, number=number, limit=limit, offset=offset)
    set_page_headers(request, response, paged)
    return [InboundOut.of(r) for r in paged.items]
