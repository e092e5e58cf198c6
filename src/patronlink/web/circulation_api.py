"""Circulation the staff API lacked: return a loan; a reservation's state, ready for pickup,
cancelled."""

from __future__ import annotations

import datetime as dt

from fastapi import APIRouter, Depends, Response
from pydantic import Field

from patronlink.domain.circulation import ReservationState
from patronlink.services import circulation
from patronlink.web.deps import AgencyDep, ClockDep, DbDep, refuse_nul_in_url
from patronlink.web.schemas import (
    BODY_ERRORS,
    ErrorOut,
    Id32Path,
    InputModel,
    LoanOut,
    ReservationOut,
)

router = APIRouter(
    prefix="/api/v1/agencies/{agency_id}",
    tags=["staff"],
    dependencies=[Depends(refuse_nul_in_url)],
    responses={
        401: {"model": ErrorOut},
        403: {"model": ErrorOut},
        404: {"model": ErrorOut},
        409: {"model": ErrorOut, "description": "the loan or reservation does not allow this"},
        422: {"model": ErrorOut},
    },
)


class ReadyIn(InputModel):
    pickup_branch: str = Field(min_length=1, max_length=16)
    pickup_deadline: dt.date | None = Field(
        default=None, description="the last day on the shelf; default a week from today"
    )


class ReservationStateOut(ReservationOut):
    status: ReservationState
    pickup_branch: str | None
    pickup_deadline: dt.date | None
    ready_at: dt.datetime | None


@router.post("/loans/{loan_id}/return", response_model=LoanOut)
def return_loan(agency: AgencyDep, loan_id: Id32Path, db: DbDep, clock: ClockDep) -> LoanOut:
    """Check the item in; 409 when it was returned already."""
    return LoanOut.of(circulation.return_loan(db, agency, loan_id, clock))


def _state(db: DbDep, agency: str, reservation_id: int, clock: ClockDep) -> ReservationStateOut:
    row, state = circulation.get_reservation(db, agency, reservation_id, clock)
    return ReservationStateOut(
        id=row.id,
        agency_id=row.agency_id,
        patron_id=row.patron_id,
        item_number=row.item_number,
        created_at=row.created_at,
        status=state,
        pickup_branch=row.pickup_branch,
        pickup_deadline=row.pickup_deadline,
        ready_at=row.ready_at,
    )


@router.get("/reservations/{reservation_id}", response_model=ReservationStateOut)
def get_reservation(
    agency: AgencyDep, reservation_id: Id32Path, db: DbDep, clock: ClockDep
) -> ReservationStateOut:
    """``waiting``, ``ready`` (with pickup branch and deadline), ``collected`` or ``expired``."""
    return _state(db, agency, reservation_id, clock)


@router.post(
    "/reservations/{reservation_id}/ready",
    response_model=ReservationStateOut,
    responses=BODY_ERRORS,
)
def reservation_ready(
    agency: AgencyDep, reservation_id: Id32Path, body: ReadyIn, db: DbDep, clock: ClockDep
) -> ReservationStateOut:
    """The item waits on the pickup shelf of ``pickup_branch`` until ``pickup_deadline``."""
    circulation.reservation_ready(
        db, agency, reservation_id, body.pickup_branch, body.pickup_deadline, clock
    )
    return _state(db, agency, reservation_id, clock)


@router.post("/reservations/{reservation_id}/cancel", status_code=204, response_class=Response)
def cancel_reservation(agency: AgencyDep, reservation_id: Id32Path, db: DbDep) -> Response:
    """Cancel a waiting or ready reservation; the item no longer holds for the patron."""
    circulation.cancel_reservation(db, agency, reservation_id)
    return Response(status_code=204)
