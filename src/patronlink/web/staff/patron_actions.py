"""Staff actions on one patron from the patron's page (forms; each change audited)."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Path
from starlette.responses import Response

from patronlink.domain.errors import ValidationError
from patronlink.domain.patron_lifecycle import MOVES, LifecycleAction
from patronlink.services import patron_lifecycle as lifecycle
from patronlink.web.staff.pages import FormDep, Page, StaffDep

router = APIRouter(prefix="/staff/patrons/{agency_id}/{patron_id}")
AgencyId = Annotated[str, Path(max_length=32)]
PatronId = Annotated[str, Path(max_length=64)]


def _agency(page: Page, agency_id: str) -> str:
    return page.agency_scope(agency_id) or agency_id


def _back(agency: str, patron_id: str) -> str:
    return f"/staff/patrons/{agency}/{quote(patron_id, safe='')}"


def moves_from(status: object) -> list[str]:
    """The lifecycle buttons the patron's page shows for a status, in the table's order."""
    return [a.value for a, (allowed, _) in MOVES.items() if status in allowed]


@router.post("/edit")
def edit(page: StaffDep, form: FormDep, agency_id: AgencyId, patron_id: PatronId) -> Response:
    agency = _agency(page, agency_id)

    def listed(name: str) -> list[str]:
        return [v.strip() for v in form.get(name).split(",") if v.strip()]

    changes = {
        "name": form.get("name"),
        "email": form.get("email").strip() or None,
        "phones": listed("phones"),
        "sms_number": form.get("sms_number").strip() or None,
        "address_lines": listed("address"),
        "zip": form.get("zip").strip() or None,
    }
    lifecycle.edit_patron(page.db, agency, patron_id, changes, page.clock, actor=page.actor)
    return page.redirect(_back(agency, patron_id), page.t("patron_saved"))


@router.post("/anonymise")
def anonymise(page: StaffDep, form: FormDep, agency_id: AgencyId, patron_id: PatronId) -> Response:
    agency = _agency(page, agency_id)
    if form.get("confirm") != "yes":
        raise ValidationError(page.t("confirm_required"), field="confirm")
    anonymous = lifecycle.anonymise_patron(page.db, agency, patron_id, page.clock, actor=page.actor)
    return page.redirect(
        _back(agency, anonymous.patron_id), page.t("patron_anonymised", id=anonymous.patron_id)
    )


@router.post("/{action}")
def move(
    page: StaffDep,
    form: FormDep,
    agency_id: AgencyId,
    patron_id: PatronId,
    action: LifecycleAction,
) -> Response:
    agency = _agency(page, agency_id)
    state = lifecycle.change_status(
        page.db,
        agency,
        patron_id,
        action,
        page.clock,
        actor=page.actor,
        reason=form.get("reason") or None,
    )
    if state.patron is None:
        return page.redirect("/staff/patrons", page.t("patron_rejected"))
    status = page.t("patron_status_" + state.patron.status.value)
    return page.redirect(_back(agency, patron_id), page.t("patron_moved", status=status))
