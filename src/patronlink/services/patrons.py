"""Patron use cases of the staff API."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from patronlink.domain.circulation import Loan
from patronlink.domain.errors import NotFound
from patronlink.domain.paging import Paged
from patronlink.domain.patron import Patron, PatronStatus, new_patron
from patronlink.services.agencies import require_agency
from patronlink.services.clock import Clock
from patronlink.storage.database import Database


@dataclass(frozen=True)
class PatronInput:
    patron_id: str
    name: str
    status: PatronStatus = PatronStatus.ACTIVE
    expiry_date: dt.date | None = None
    email: str | None = None
    phones: list[str] = field(default_factory=list)
    sms_number: str | None = None
    want_sms: bool = False
    address_lines: list[str] = field(default_factory=list)
    zip: str | None = None
    birth_date: dt.date | None = None
    home_branch: str | None = None


def create_patron(db: Database, agency_ref: str, data: PatronInput, clock: Clock) -> Patron:
    """Create a patron; phone numbers are normalised with the agency's country code."""
    with db.transaction() as repos:
        agency = require_agency(repos, agency_ref)
        patron = new_patron(
            agency_id=agency.id,
            country_code=agency.country_code,
            patron_id=data.patron_id,
            name=data.name,
            phones=data.phones,
            sms_number=data.sms_number,
            status=data.status,
            expiry_date=data.expiry_date,
            email=data.email,
            want_sms=data.want_sms,
            address_lines=tuple(line.strip() for line in data.address_lines),
            zip=data.zip,
            birth_date=data.birth_date,
            home_branch=data.home_branch,
            source="staff",
        )
        repos.patrons.add(patron, clock())
        return patron


def get_patron(db: Database, agency_ref: str, patron_id: str) -> Patron:
    with db.transaction() as repos:
        agency = require_agency(repos, agency_ref)
        patron = repos.patrons.get(agency.id, patron_id)
        if patron is None:
            raise NotFound(f"patron {patron_id!r} does not exist in {agency.id}")
        return patron


def search_patrons(
    db: Database, agency_ref: str, query: str | None, limit: int, offset: int
) -> list[Patron]:
    with db.transaction() as repos:
        agency = require_agency(repos, agency_ref)
        return repos.patrons.search(agency.id, query, limit=limit, offset=offset)


def page_patrons(
    db: Database,
    agency_ref: str | None,
    query: str | None,
    limit: int,
    offset: int,
    *,
    status: PatronStatus | None = None,
) -> Paged[Patron]:
    """A page of patrons by patron id, narrowed by a search and a status.

    ``agency_ref`` None lists every agency's (only for an administrator).
    """
    with db.transaction() as repos:
        agency_id = require_agency(repos, agency_ref).id if agency_ref is not None else None
        found = repos.patrons.search(agency_id, query, limit=limit, offset=offset, status=status)
        return Paged(found, repos.patrons.count(agency_id, query, status=status), offset, limit)


@dataclass(frozen=True)
class LoanView:
    loan: Loan
    title: str


def loans_of_patron(
    db: Database, agency_ref: str, patron_id: str, *, active_only: bool = True
) -> list[LoanView]:
    with db.transaction() as repos:
        agency = require_agency(repos, agency_ref)
        found = repos.patrons.get_with_pk(agency.id, patron_id)
        if found is None:
            raise NotFound(f"patron {patron_id!r} does not exist in {agency.id}")
        return [
            LoanView(loan, title)
            for loan, title in repos.circulation.loans_with_titles(
                [found[0]], active_only=active_only
            )
        ]


@dataclass(frozen=True)
class PatronOverview:
    """A patron with what staff ask about: loans, renewals by SMS and the texts sent to them."""

    patron: Patron
    loans: list[LoanView]
    renewals: list[dict[str, Any]]  # inbound SMS rows that matched this patron
    texts: list[dict[str, Any]]  # outbox rows sent to the patron's numbers


def patron_overview(db: Database, agency_ref: str, patron_id: str) -> PatronOverview:
    with db.transaction() as repos:
        agency = require_agency(repos, agency_ref)
        found = repos.patrons.get_with_pk(agency.id, patron_id)
        if found is None:
            raise NotFound(f"patron {patron_id!r} does not exist in {agency.id}")
        pk, patron = found
        loans = [
            LoanView(loan, title)
            for loan, title in repos.circulation.loans_with_titles([pk], active_only=False)
        ]
        numbers = sorted(patron.numbers())
        q = repos.overview
        inbound = q.inbound_from(agency.id, numbers)
        return PatronOverview(
            patron=patron,
            loans=loans,
            renewals=[r for r in inbound if patron.patron_id in (r["patrons_matched"] or [])],
            texts=q.messages_to(agency.id, numbers),
        )
