"""Patrons (search; one patron with loans, renewals and texts) and an agency's configuration."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query
from starlette.responses import Response

from patronlink.domain.errors import NotFound
from patronlink.services import patrons
from patronlink.web.staff.masking import masked_settings
from patronlink.web.staff.pages import Page, StaffDep

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
) -> Response:
    scope = page.agency_scope(agency)
    agencies = page.agencies()
    searched = [scope] if scope else [a.id for a in agencies]
    query = q.strip()
    found = (
        [p for a in searched for p in patrons.search_patrons(page.db, a, query, PAGE_SIZE, 0)]
        if query
        else []  # an empty search would list everyone: wait until something is asked
    )
    return page.render(
        "patrons.html",
        title=page.t("patrons"),
        rows=found[:PAGE_SIZE],
        agencies=agencies,
        filters={"agency": scope or "", "q": q},
    )


@router.get("/patrons/{agency_id}/{patron_id}")
def show_patron(
    page: StaffDep, agency_id: AgencyId, patron_id: Annotated[str, Path(max_length=64)]
) -> Response:
    agency = _own(page, agency_id)
    overview = patrons.patron_overview(page.db, agency, patron_id)
    return page.render("patron.html", title=overview.patron.name, overview=overview, agency=agency)


@router.get("/agencies")
def list_agencies(page: StaffDep) -> Response:
    return page.render("agencies.html", title=page.t("agencies"), agencies=page.agencies())


@router.get("/agencies/{agency_id}")
def show_agency(page: StaffDep, agency_id: AgencyId) -> Response:
    """Read-only: what `patronlink config apply` set; secrets masked."""
    own = _own(page, agency_id)
    with page.db.transaction() as repos:
        agency = repos.agencies.get(own)
        if agency is None:
            raise NotFound(f"agency {agency_id!r} does not exist")
        settings = repos.agencies.settings(agency.id)
        users = repos.integration_users.usernames(agency.id)
        sources = repos.import_sources.list(agency.id)
    return page.render(
        "agency.html",
        title=page.t("configuration", agency=agency.name),
        agency=agency,
        sections=masked_settings(settings),
        integration_users=users,
        sources=[(sid, masked_settings(s)) for sid, _, s in sources],
    )
