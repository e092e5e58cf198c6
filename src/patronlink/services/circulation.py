"""Items, checkouts and reservations (the staff API's circulation use cases)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

from patronlink.config.schema import AgencySettings
from patronlink.domain.circulation import (
    Item,
    Loan,
    Reservation,
    ReservationState,
    new_item,
    shown_state,
)
from patronlink.domain.errors import Conflict, NotFound, ValidationError
from patronlink.domain.patron import Patron
from patronlink.domain.renewal import RenewalPolicy
from patronlink.services.agencies import require_agency
from patronlink.services.clock import Clock
from patronlink.storage.circulation_desk import ReservationRow
from patronlink.storage.database import Database


def renewal_policy(settings: AgencySettings) -> RenewalPolicy:
    """The agency's policy from its stored settings (``[agencies.renewal]``)."""
    renewal = settings.renewal
    return RenewalPolicy(
        loan_days=renewal.loan_days,
        max_renewals=renewal.max_renewals,
        renew_not_before_days=renewal.renew_not_before_days,
    )


def add_item(db: Database, agency_ref: str, item_number: str, title: str) -> Item:
    with db.transaction() as repos:
        agency = require_agency(repos, agency_ref)
        item = new_item(agency_id=agency.id, item_number=item_number, title=title)
        repos.circulation.add_item(item)
        return item


def _patron_and_item(
    repos: Any, agency_id: str, patron_id: str, item_number: str
) -> tuple[tuple[int, Patron], tuple[int, Item]]:
    """The patron and the item, each with its row key; ``NotFound`` names the one missing."""
    patron = repos.patrons.get_with_pk(agency_id, patron_id)
    if patron is None:
        raise NotFound(f"patron {patron_id!r} does not exist in {agency_id}")
    item = repos.circulation.item(agency_id, item_number)
    if item is None:
        raise NotFound(f"item {item_number!r} does not exist in {agency_id}")
    return patron, item


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
        patron, item = _patron_and_item(repos, agency.id, patron_id, item_number)
        today = now.astimezone(agency.zone).date()
        if due_date is None:
            due_date = today + dt.timedelta(
                days=renewal_policy(repos.agencies.settings(agency.id)).loan_days
            )
        elif due_date < today:
            raise ValidationError("due_date is in the past", field="due_date")
        loan_id = repos.circulation.checkout(agency.id, patron[0], item[0], now, due_date)
        repos.desk.collect(item[0], patron[0])  # a reservation it fulfils is collected
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
        patron, item = _patron_and_item(repos, agency.id, patron_id, item_number)
        repos.desk.clear_finished(item[0], patron[0])
        reservation_id = repos.circulation.reserve(agency.id, item[0], patron[0], now)
        return Reservation(
            id=reservation_id,
            agency_id=agency.id,
            item_number=item_number,
            patron_id=patron_id,
            created_at=now,
        )


PICKUP_DAYS = 7  # how long a ready reservation waits on the shelf unless staff say otherwise


def return_loan(db: Database, agency_ref: str, loan_id: int, clock: Clock) -> Loan:
    """Check an item in; ``Conflict`` when the loan was returned already."""
    now = clock()
    with db.transaction() as repos:
        agency = require_agency(repos, agency_ref)
        loan = repos.circulation.loan(loan_id)
        if loan is None or loan.agency_id != agency.id:
            raise NotFound(f"loan {loan_id} does not exist in {agency.id}")
        if not repos.circulation.checkin(loan_id, now):
            raise Conflict(f"loan {loan_id} was returned already")
        return dataclasses.replace(loan, returned_at=now)


def _reservation(repos: Any, agency_id: str, reservation_id: int) -> ReservationRow:
    found: ReservationRow | None = repos.desk.reservation(agency_id, reservation_id)
    if found is None:
        raise NotFound(f"reservation {reservation_id} does not exist in {agency_id}")
    return found


def get_reservation(
    db: Database, agency_ref: str, reservation_id: int, clock: Clock
) -> tuple[ReservationRow, ReservationState]:
    """The reservation and its state as of now (a ready one past its deadline is expired)."""
    with db.transaction() as repos:
        agency = require_agency(repos, agency_ref)
        found = _reservation(repos, agency.id, reservation_id)
        today = clock().astimezone(agency.zone).date()
        return found, shown_state(found.status, found.pickup_deadline, today)


def reservation_ready(
    db: Database,
    agency_ref: str,
    reservation_id: int,
    branch: str,
    deadline: dt.date | None,
    clock: Clock,
) -> None:
    """The item is on the pickup shelf at ``branch`` until ``deadline`` (default a week)."""
    now = clock()
    with db.transaction() as repos:
        agency = require_agency(repos, agency_ref)
        found = _reservation(repos, agency.id, reservation_id)
        if found.status is not ReservationState.WAITING:
            raise Conflict(f"reservation {reservation_id} is {found.status.value}, not waiting")
        if branch not in {b.code for b in agency.branches}:
            raise ValidationError(f"{agency.id} has no branch {branch!r}", field="pickup_branch")
        today = now.astimezone(agency.zone).date()
        deadline = deadline or today + dt.timedelta(days=PICKUP_DAYS)
        if deadline < today:
            raise ValidationError("pickup_deadline is in the past", field="pickup_deadline")
        repos.desk.set_ready(reservation_id, branch, deadline, now)


def expire_uncollected_reservations(db: Database, clock: Clock) -> dict[str, list[int]]:
    """Move every ready reservation past its pickup deadline to expired (the worker's hourly
    round), each agency by its own calendar; the ids expired, per agency that had any."""
    now = clock()
    expired: dict[str, list[int]] = {}
    with db.transaction() as repos:
        for agency in repos.agencies.list():
            ids = repos.desk.expire_uncollected(agency.id, now.astimezone(agency.zone).date())
            if ids:
                expired[agency.id] = ids
    return expired


def cancel_reservation(db: Database, agency_ref: str, reservation_id: int) -> None:
    """Cancel a waiting or ready reservation (it is removed); collected ones are history."""
    with db.transaction() as repos:
        agency = require_agency(repos, agency_ref)
        found = _reservation(repos, agency.id, reservation_id)
        if found.status is ReservationState.COLLECTED:
            raise Conflict(f"reservation {reservation_id} was collected already")
        repos.desk.cancel(reservation_id)
