"""Patrons (search; one patron with loans, renewals and texts) and an agency's configuration."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query
from starlette.responses import Response

from patronlink.domain.errors import NotFound
from patronlink.domain.paging import MAX_PAGE, Paged
from patronlink.domain.patron import PatronStatus
from patronlink.services import agencies, patron_lifecycle, patrons
from patronlink.web.staff.masking import masked_settings
from patronlink.web.staff.pages import Page, StaffDep
from patronlink.web.staff.patron_actions import moves_from

router = APIRouter(prefix="/staff")
PAGE_SIZE = 100
AgencyId = Annotated[str, Path(max_length=32)]


def _own(page: Page, agency_id: str) -> str:
    """The agency in the path, if the user may see it (else as if it did not exist)."""
    return page.agency_scope(agency_id) or agency_id


@router.get("/patrons")
def search_patrons(
    page: StaffDep,
    agency: Annotated[str, Query(max_length=32)] = "",
    q: Annotated[str, Query(max_length=200)] = "",
    status: Annotated[str, Query(max_length=16)] = "",
    offset: Annotated[int, Query(ge=0, le=2**62)] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = PAGE_SIZE,
) -> Response:
    scope = page.agency_scope(agency)  # None only for an administrator: every agency
    query = q.strip()
    wanted = PatronStatus(status) if status in set(PatronStatus) else None
    # An empty search would list everyone: wait until a text or a status is asked for.
    asked = bool(query) or wanted is not None
    paged = (
        patrons.page_patrons(page.db, scope, query or None, limit, offset, status=wanted)
        if asked
        else Paged([], 0, 0, limit)
    )
    return page.render(
        "patrons.html",
        title=page.t("patrons"),
        rows=paged.items,
        pager=page.pager(paged),
        asked=asked,
        agencies=page.agencies(),
        statuses=list(PatronStatus),
        filters={"agency": scope or "", "q": q, "status": status},
    )


@router.get("/patrons/{agency_id}/{patron_id}")
def show_patron(
    page: StaffDep, agency_id: AgencyId, patron_id: Annotated[str, Path(max_length=64)]
) -> Response:
    agency = _own(page, agency_id)
    overview = patrons.patron_overview(page.db, agency, patron_id)
    return page.render(
        "patron.html",
        title=overview.patron.name,
        overview=overview,
        agency=agency,
        moves=moves_from(overview.patron.status),
        status_reason=patron_lifecycle.status_reason(page.db, agency, patron_id),
    )


@router.get("/agencies")
def list_agencies(page: StaffDep) -> Response:
    return page.render("agencies.html", title=page.t("agencies"), agencies=page.agencies())


@router.get("/agencies/{agency_id}")
def show_agency(page: StaffDep, agency_id: AgencyId) -> Response:
    """Read-only: what `patronlink config apply` set; secrets masked."""
    found = agencies.configuration(page.db, _own(page, agency_id))
    if found is None:
        raise NotFound(f"agency {agency_id!r} does not exist")
    return page.render(
        "agency.html",
        title=page.t("configuration", agency=found.agency.name),
        agency=found.agency,
        sections=masked_settings(found.settings),
        integration_users=found.integration_users,
        sources=[(sid, masked_settings(s)) for sid, s in found.import_sources],
    )
