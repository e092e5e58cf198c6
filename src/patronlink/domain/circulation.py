"""Items, loans and reservations: the circulation data that renewals and reminders touch."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum

from patronlink.domain.errors import ValidationError

MAX_ITEM_NUMBER = 64
MAX_TITLE = 500


@dataclass(frozen=True, slots=True)
class Item:
    agency_id: str
    item_number: str
    title: str


@dataclass(frozen=True, slots=True)
class Loan:
    agency_id: str
    patron_id: str
    item_number: str
    loaned_at: dt.datetime
    due_date: dt.date
    renewal_count: int = 0
    returned_at: dt.datetime | None = None
    id: int | None = None

    @property
    def is_active(self) -> bool:
        return self.returned_at is None


@dataclass(frozen=True, slots=True)
class Reservation:
    agency_id: str
    item_number: str
    patron_id: str
    created_at: dt.datetime | None = None
    id: int | None = None


def new_item(*, agency_id: str, item_number: str, title: str) -> Item:
    number = item_number.strip()
    if not number:
        raise ValidationError("item number is empty", field="item_number")
    if len(number) > MAX_ITEM_NUMBER or any(ch.isspace() for ch in number):
        raise ValidationError(
            f"item number must be one word of at most {MAX_ITEM_NUMBER} characters",
            field="item_number",
        )
    clean_title = title.strip()
    if not clean_title:
        raise ValidationError("title is empty", field="title")
    if len(clean_title) > MAX_TITLE:
        raise ValidationError(f"title is longer than {MAX_TITLE} characters", field="title")
    return Item(agency_id=agency_id, item_number=number, title=clean_title)


class ReservationState(StrEnum):
    """waiting -> ready (on the pickup shelf) -> collected (lent to the patron) or expired."""

    WAITING = "waiting"
    READY = "ready"
    COLLECTED = "collected"
    EXPIRED = "expired"


def shown_state(
    state: ReservationState, deadline: dt.date | None, today: dt.date
) -> ReservationState:
    """A ready reservation whose pickup deadline has passed is expired, even before the row is."""
    if state is ReservationState.READY and deadline is not None and deadline < today:
        return ReservationState.EXPIRED
    return state
