"""Reading the log of inbound SMS (renewal requests), newest first, a page at a time."""

from __future__ import annotations

from typing import Any

from patronlink.domain import phone
from patronlink.domain.paging import Paged
from patronlink.services.agencies import require_agency
from patronlink.storage.database import Database, Repositories


def log_page(
    db: Database, agency_id: str | None, *, number: str | None, limit: int, offset: int
) -> Paged[dict[str, Any]]:
    """One page of an agency's log (every agency's for None), narrowed to an E.164 number."""
    with db.transaction() as repos:
        return _page(repos, agency_id, number, limit, offset)


def agency_log_page(
    db: Database, agency_ref: str, *, number: str | None, limit: int, offset: int
) -> Paged[dict[str, Any]]:
    """One page of the agency's log; a number is read with the agency's country code."""
    with db.transaction() as repos:
        found = require_agency(repos, agency_ref)
        e164 = phone.normalise(number, found.country_code, field="number") if number else None
        return _page(repos, found.id, e164, limit, offset)


def _page(
    repos: Repositories, agency_id: str | None, number: str | None, limit: int, offset: int
) -> Paged[dict[str, Any]]:
    rows = repos.inbound.search(agency_id, number=number, limit=limit, offset=offset)
    total = repos.inbound.count(agency_id, number=number)
    return Paged(rows, total, offset, limit)
