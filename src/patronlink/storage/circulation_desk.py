"""The circulation desk: returning a loan, and a reservation's state from waiting to collected."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import Connection, delete, select, update

from patronlink.domain.circulation import ReservationState
from patronlink.storage.tables import items, patrons, reservations


@dataclass(frozen=True, slots=True)
class ReservationRow:
    id: int
    agency_id: str
    item_number: str
    patron_id: str
    created_at: dt.datetime
    status: ReservationState
    pickup_branch: str | None
    pickup_deadline: dt.date | None
    ready_at: dt.datetime | None


_SELECT = (
    select(
        reservations.c.id,
        reservations.c.agency_id,
        items.c.item_number,
        patrons.c.patron_id,
        reservations.c.created_at,
        reservations.c.status,
        reservations.c.pickup_branch,
        reservations.c.pickup_deadline,
        reservations.c.ready_at,
    )
    .join(items, items.c.id == reservations.c.item_pk)
    .join(patrons, patrons.c.id == reservations.c.patron_pk)
)


class DeskRepository:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def reservation(self, agency_id: str, reservation_id: int) -> ReservationRow | None:
        row = self._conn.execute(
            _SELECT.where(
                reservations.c.id == reservation_id, reservations.c.agency_id == agency_id
            )
        ).first()
        if row is None:
            return None
        return ReservationRow(
            row.id,
            row.agency_id,
            row.item_number,
            row.patron_id,
            row.created_at,
            ReservationState(row.status),
            row.pickup_branch,
            row.pickup_deadline,
            row.ready_at,
        )

    def set_ready(
        self, reservation_id: int, branch: str, deadline: dt.date, now: dt.datetime
    ) -> None:
        self._conn.execute(
            update(reservations)
            .where(reservations.c.id == reservation_id)
            .values(
                status=ReservationState.READY.value,
                pickup_branch=branch,
                pickup_deadline=deadline,
                ready_at=now,
            )
        )

    def set_state(self, reservation_id: int, state: ReservationState) -> None:
        self._conn.execute(
            update(reservations)
            .where(reservations.c.id == reservation_id)
            .values(status=state.value)
        )

    def expire_uncollected(self, agency_id: str, today: dt.date) -> list[int]:
        """Ready reservations whose pickup deadline is before ``today`` become expired; their ids.

        Until this runs a late one already reads as expired (``shown_state``), but its row still
        holds the item: the renewal check and the next reservation see it as holding.
        """
        return list(
            self._conn.execute(
                update(reservations)
                .where(
                    reservations.c.agency_id == agency_id,
                    reservations.c.status == ReservationState.READY.value,
                    reservations.c.pickup_deadline < today,
                )
                .values(status=ReservationState.EXPIRED.value)
                .returning(reservations.c.id)
            ).scalars()
        )

    def cancel(self, reservation_id: int) -> None:
        self._conn.execute(delete(reservations).where(reservations.c.id == reservation_id))

    def collect(self, item_pk: int, patron_pk: int) -> None:
        """The patron took the reserved item home: their holding reservation is collected."""
        self._conn.execute(
            update(reservations)
            .where(
                reservations.c.item_pk == item_pk,
                reservations.c.patron_pk == patron_pk,
                reservations.c.status.in_(("waiting", "ready")),
            )
            .values(status=ReservationState.COLLECTED.value)
        )

    def clear_finished(self, item_pk: int, patron_pk: int) -> None:
        """Remove a collected or expired reservation, so the patron may reserve the item again."""
        self._conn.execute(
            delete(reservations).where(
                reservations.c.item_pk == item_pk,
                reservations.c.patron_pk == patron_pk,
                reservations.c.status.in_(("collected", "expired")),
            )
        )
