"""Items, checkouts and reservations (the staff API's circulation use cases)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from patronlink.domain.circulation import Item, Loan, Reservation, new_item
from patronlink.domain.errors import NotFound, ValidationError
from patronlink.domain.renewal import RenewalPolicy
from patronlink.services.agencies import require_agency
from patronlink.services.clock import Clock
from patronlink.storage.database import Database


def renewal_policy(settings: Mapping[str, Any]) -> RenewalPolicy:
    """The agency's policy from its stored settings (``[agencies.renewal]``)."""
    renewal = settings.get("renewal", {})
    return RenewalPolicy(
        loan_days=int(renewal.get("loan_days", 30)),
        max_renewals=int(renewal.get("max_renewals", 3)),
        renew_not_before_days=renewal.get("renew_not_before_days"),
    )


def add_item(db: Database, agency_ref: str, item_number: str, title: str) -> Item:
    with db.transaction() as repos:
        agency = require_agency(repos, agency_ref)
        item = new_item(agency_id=agency.id, item_number=item_number, title=title)
        repos.circulation.add_item(item)
        return item


def checkout(
    db: Database,
    agency_ref: str,
    patron_id: str,
    item_number: str,
    due_date: dt.date | None,
    clock: Clock,
) -> Loan:
    """Lend an item; without a due date the agency's loan period applies."""
    now = clock()
    with db.transaction() as repos:
        agency = require_agency(repos, agency_ref)
        patron = repos.patrons.get_with_pk(agency.id, patron_id)
        if patron is None:
            raise NotFound(f"patron {patron_id!r} does not exist in {agency.id}")
        item = repos.circulation.item(agency.id, item_number)
        if item is None:
            raise NotFound(f"item {item_number!r} does not exist in {agency.id}")
        today = now.astimezone(agency.zone).date()
        if due_date is None:
            due_date = today + dt.timedelta(
                days=renewal_policy(repos.agencies.settings(agency.id)).loan_days
            )
        elif due_date < today:
            raise ValidationError("due_date is in the past", field="due_date")
        loan_id = repos.circulation.checkout(agency.id, patron[0], item[0], now, due_date)
        return Loan(
            id=loan_id,
            agency_id=agency.id,
            patron_id=patron[1].patron_id,
            item_number=item[1].item_number,
            loaned_at=now,
            due_date=due_date,
        )


def reserve(
    db: Database, agency_ref: str, patron_id: str, item_number: str, clock: Clock
) -> Reservation:
    now = clock()
    with db.transaction() as repos:
        agency = require_agency(repos, agency_ref)
        patron = repos.patrons.get_with_pk(agency.id, patron_id)
        if patron is None:
            raise NotFound(f"patron {patron_id!r} does not exist in {agency.id}")
        item = repos.circulation.item(agency.id, item_number)
        if item is None:
            raise NotFound(f"item {item_number!r} does not exist in {agency.id}")
        reservation_id = repos.circulation.reserve(agency.id, item[0], patron[0], now)
        return Reservation(
            id=reservation_id,
            agency_id=agency.id,
            item_number=item_number,
            patron_id=patron_id,
            created_at=now,
        )
