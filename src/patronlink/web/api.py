"""The staff JSON API under /api/v1 (bearer tokens scoped to one agency or all)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response

from patronlink.domain.patron import PatronStatus
from patronlink.services import agencies, circulation, patrons
from patronlink.services.patrons import PatronInput
from patronlink.web.deps import AgencyDep, ClockDep, DbDep, ScopeDep, refuse_nul_in_url
from patronlink.web.paging import PAGED_HEADERS, set_page_headers
from patronlink.web.schemas import (
    BODY_ERRORS,
    AgencyOut,
    CheckoutIn,
    ErrorOut,
    ItemIn,
    ItemOut,
    LoanOut,
    Offset,
    PatronIn,
    PatronOut,
    ReservationIn,
    ReservationOut,
)

_ERRORS: dict[int | str, dict[str, object]] = {
    401: {"model": ErrorOut, "description": "no or invalid token"},
    403: {"model": ErrorOut, "description": "token of another agency"},
    404: {"model": ErrorOut, "description": "not found"},
    422: {"model": ErrorOut, "description": "invalid input; the fields are named"},
}

router = APIRouter(
    prefix="/api/v1",
    responses=_ERRORS,
    tags=["staff"],
    dependencies=[Depends(refuse_nul_in_url)],
)


@router.get("/agencies", response_model=list[AgencyOut])
def list_agencies(db: DbDep, scope: ScopeDep) -> list[AgencyOut]:
    found = agencies.list_agencies(db)
    return [
        AgencyOut(
            id=a.id,
            name=a.name,
            timezone=a.timezone,
            language=a.language.value,
            country_code=a.country_code,
            branches=[{"code": b.code, "name": b.name} for b in a.branches],
        )
        for a in found
        if scope.allows(a.id)
    ]


@router.post(
    "/agencies/{agency_id}/patrons",
    status_code=201,
    response_model=PatronOut,
    responses={**BODY_ERRORS, 409: {"model": ErrorOut, "description": "patron id taken"}},
)
def create_patron(agency: AgencyDep, body: PatronIn, db: DbDep, clock: ClockDep) -> PatronOut:
    patron = patrons.create_patron(db, agency, PatronInput(**body.model_dump()), clock)
    return PatronOut.of(patron)


@router.get(
    "/agencies/{agency_id}/patrons",
    response_model=list[PatronOut],
    responses={200: {"headers": PAGED_HEADERS}},
)
def search_patrons(
    agency: AgencyDep,
    db: DbDep,
    request: Request,
    response: Response,
    q: Annotated[str | None, Query(max_length=200, description="name, patron id or phone")] = None,
    status: Annotated[PatronStatus | None, Query(description="e.g. pending")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Offset = 0,
) -> list[PatronOut]:
    """By patron id; the total in ``X-Total-Count``, the next page in ``Link``."""
    paged = patrons.page_patrons(db, agency, q, limit, offset, status=status)
    set_page_headers(request, response, paged)
    return [PatronOut.of(p) for p in paged.items]


@router.get("/agencies/{agency_id}/patrons/{patron_id}", response_model=PatronOut)
def get_patron(agency: AgencyDep, patron_id: str, db: DbDep) -> PatronOut:
    return PatronOut.of(patrons.get_patron(db, agency, patron_id))


@router.get("/agencies/{agency_id}/patrons/{patron_id}/loans", response_model=list[LoanOut])
def patron_loans(
    agency: AgencyDep,
    patron_id: str,
    db: DbDep,
    include_returned: bool = False,
) -> list[LoanOut]:
    views = patrons.loans_of_patron(db, agency, patron_id, active_only=not include_returned)
    return [LoanOut.of(v.loan, v.title) for v in views]


@router.post(
    "/agencies/{agency_id}/items",
    status_code=201,
    response_model=ItemOut,
    responses={**BODY_ERRORS, 409: {"model": ErrorOut, "description": "item number taken"}},
)
def create_item(agency: AgencyDep, body: ItemIn, db: DbDep) -> ItemOut:
    return ItemOut.of(circulation.add_item(db, agency, body.item_number, body.title))


@router.post(
    "/agencies/{agency_id}/loans",
    status_code=201,
    response_model=LoanOut,
    responses={**BODY_ERRORS, 409: {"model": ErrorOut, "description": "item on loan already"}},
)
def checkout(agency: AgencyDep, body: CheckoutIn, db: DbDep, clock: ClockDep) -> LoanOut:
    loan = circulation.checkout(db, agency, body.patron_id, body.item_number, body.due_date, clock)
    return LoanOut.of(loan)


@router.post(
    "/agencies/{agency_id}/reservations",
    status_code=201,
    response_model=ReservationOut,
    responses={**BODY_ERRORS, 409: {"model": ErrorOut, "description": "reserved already"}},
)
def reserve(agency: AgencyDep, body: ReservationIn, db: DbDep, clock: ClockDep) -> ReservationOut:
    return ReservationOut.of(
        circulation.reserve(db, agency, body.patron_id, body.item_number, clock)
    )
