"""Staff API for a patron's life: edit contact fields, approve or reject a self-registration,
block and unblock with a reason, deactivate, anonymise. Every change is audited."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Response
from pydantic import Field

from patronlink.domain.patron_lifecycle import MAX_REASON, LifecycleAction
from patronlink.services import patron_lifecycle as lifecycle
from patronlink.services.patron_lifecycle import PatronState
from patronlink.web.deps import ActorDep, AgencyDep, ClockDep, DbDep, refuse_nul_in_url
from patronlink.web.schemas import BODY_ERRORS, ErrorOut, InputModel, PatronOut

router = APIRouter(
    prefix="/api/v1/agencies/{agency_id}/patrons/{patron_id}",
    tags=["staff"],
    dependencies=[Depends(refuse_nul_in_url)],
    responses={
        401: {"model": ErrorOut},
        403: {"model": ErrorOut},
        404: {"model": ErrorOut},
        409: {"model": ErrorOut, "description": "the patron's status does not allow this"},
        422: {"model": ErrorOut},
    },
)
PatronId = Annotated[str, Path(max_length=64)]


class PatronPatchIn(InputModel):
    """Only the fields sent are changed; ``null`` clears an optional field."""

    name: str | None = Field(default=None, min_length=1, max_length=200)
    email: str | None = Field(default=None, max_length=254)
    phones: list[str] | None = Field(default=None, max_length=8)
    sms_number: str | None = Field(default=None, max_length=40)
    want_sms: bool | None = None
    address_lines: list[str] | None = Field(default=None, max_length=4)
    zip: str | None = Field(default=None, max_length=16)
    birth_date: dt.date | None = None
    home_branch: str | None = Field(default=None, max_length=16)
    expiry_date: dt.date | None = None


class BlockIn(InputModel):
    reason: str = Field(min_length=1, max_length=MAX_REASON)


class PatronStateOut(PatronOut):
    status_reason: str | None = None


def _out(state: PatronState) -> PatronStateOut:
    assert state.patron is not None
    return PatronStateOut(**PatronOut.of(state.patron).model_dump(), status_reason=state.reason)


@router.patch("", response_model=PatronStateOut, responses=BODY_ERRORS)
def edit(
    agency: AgencyDep,
    patron_id: PatronId,
    body: PatronPatchIn,
    db: DbDep,
    clock: ClockDep,
    actor: ActorDep,
) -> PatronStateOut:
    changes = body.model_dump(exclude_unset=True)
    for required in ("name", "want_sms"):
        if required in changes and changes[required] is None:
            changes.pop(required)  # cannot be cleared: null leaves it as it is
    patron = lifecycle.edit_patron(db, agency, patron_id, changes, clock, actor=actor)
    reason = lifecycle.status_reason(db, agency, patron.patron_id)
    return _out(PatronState(patron, reason))


def _move(action: LifecycleAction, summary: str) -> None:
    @router.post(f"/{action.value}", response_model=PatronStateOut, summary=summary)
    def move(
        agency: AgencyDep, patron_id: PatronId, db: DbDep, clock: ClockDep, actor: ActorDep
    ) -> PatronStateOut:
        return _out(lifecycle.change_status(db, agency, patron_id, action, clock, actor=actor))

    move.__name__ = f"{action.value}_patron"


_move(LifecycleAction.APPROVE, "Approve a pending self-registration (pending -> active)")
_move(LifecycleAction.UNBLOCK, "Lift a block (blocked -> active)")
_move(LifecycleAction.DEACTIVATE, "Deactivate (-> inactive)")


@router.post("/block", response_model=PatronStateOut, responses=BODY_ERRORS)
def block_patron(
    agency: AgencyDep,
    patron_id: PatronId,
    body: BlockIn,
    db: DbDep,
    clock: ClockDep,
    actor: ActorDep,
) -> PatronStateOut:
    """Block with a reason: renewals are refused with ``deniedLoanerIsBlocked`` and the reply
    says the card is blocked."""
    return _out(
        lifecycle.change_status(
            db, agency, patron_id, LifecycleAction.BLOCK, clock, actor=actor, reason=body.reason
        )
    )


@router.post("/reject", status_code=204, response_class=Response)
def reject_patron(
    agency: AgencyDep, patron_id: PatronId, db: DbDep, clock: ClockDep, actor: ActorDep
) -> Response:
    """Reject a pending self-registration: the registration is removed."""
    lifecycle.change_status(db, agency, patron_id, LifecycleAction.REJECT, clock, actor=actor)
    return Response(status_code=204)


@router.post("/anonymise", response_model=PatronOut)
def anonymise_patron(
    agency: AgencyDep, patron_id: PatronId, db: DbDep, clock: ClockDep, actor: ActorDep
) -> PatronOut:
    """Erase the person on request (GDPR art. 17): name, contact data, birth date, address and
    the texts to and from their numbers are replaced; loans keep their history without them.
    The answer carries the anonymous id the row now has."""
    return PatronOut.of(lifecycle.anonymise_patron(db, agency, patron_id, clock, actor=actor))
