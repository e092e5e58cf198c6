"""Items, loans and reservations."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Connection, bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError

from patronlink.domain.circulation import Item, Loan, Reservation
from patronlink.domain.errors import Conflict
from patronlink.storage.tables import items, loans, patrons, reservations

# Reservations that still hold their item for the patron; collected and expired ones do not.
HOLDING = ("waiting", "ready")


def _loan_query() -> Any:
    return (
        select(
            loans.c.id,
            loans.c.agency_id,
            patrons.c.patron_id,
            items.c.item_number,
            items.c.title,
            loans.c.loaned_at,
            loans.c.due_date,
            loans.c.renewal_count,
            loans.c.returned_at,
        )
        .join(patrons, patrons.c.id == loans.c.patron_pk)
        .join(items, items.c.id == loans.c.item_pk)
    )


# The statements renewal by SMS runs on every request, built once (a reused statement keeps its
# SQL cache key: no per-call construction or hashing).
_PATRON_LOANS = (
    _loan_query()
    .where(loans.c.patron_pk.in_(bindparam("patron_pks", expanding=True)))
    .order_by(loans.c.due_date, loans.c.id)
)
_ACTIVE_PATRON_LOANS = _PATRON_LOANS.where(loans.c.returned_at.is_(None))
_RENEW = (
    update(loans)
    .where(
        loans.c.id == bindparam("loan_id"),
        loans.c.renewal_count == bindparam("expected_count"),
        loans.c.returned_at.is_(None),
    )
    .values(due_date=bindparam("new_due_date"), renewal_count=bindparam("new_count"))
)
# The active loans of some patrons, each with every reservation on its item (one row per loan
# and reservation): renewal by SMS needs both, and one query is one round trip less.
_RESERVER = patrons.alias("reserver")
_ACTIVE_LOANS_AND_RESERVATIONS = (
    _loan_query()
    .add_columns(
        reservations.c.id.label("reservation_id"),
        reservations.c.agency_id.label("reservation_agency_id"),
        _RESERVER.c.patron_id.label("reserved_by"),
        reservations.c.created_at.label("reserved_at"),
    )
    .outerjoin(
        reservations,
        (reservations.c.item_pk == loans.c.item_pk)
        & (reservations.c.agency_id == bindparam("agency_id"))
        & reservations.c.status.in_(HOLDING),
    )
    .outerjoin(_RESERVER, _RESERVER.c.id == reservations.c.patron_pk)
    .where(
        loans.c.patron_pk.in_(bindparam("patron_pks", expanding=True)),
        loans.c.returned_at.is_(None),
    )
    .order_by(loans.c.due_date, loans.c.id, reservations.c.created_at)
)
_RESERVATIONS_FOR_ITEMS = (
    select(
        reservations.c.id,
        reservations.c.agency_id,
        items.c.item_number,
        patrons.c.patron_id,
        reservations.c.created_at,
    )
    .join(items, items.c.id == reservations.c.item_pk)
    .join(patrons, patrons.c.id == reservations.c.patron_pk)
    .where(
        reservations.c.agency_id == bindparam("agency_id"),
        items.c.item_number.in_(bindparam("item_numbers", expanding=True)),
        reservations.c.status.in_(HOLDING),
    )
    .order_by(reservations.c.created_at)
)


class CirculationRepository:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    # Items -------------------------------------------------------------------------------
    def add_item(self, item: Item) -> int:
        try:
            with self._conn.begin_nested():
                return int(
                    self._conn.execute(
                        insert(items)
                        .values(
                            agency_id=item.agency_id, item_number=item.item_number, title=item.title
                        )
                        .returning(items.c.id)
                    ).scalar_one()
                )
        except IntegrityError as exc:
            raise Conflict(
                f"item number {item.item_number!r} exists already in {item.agency_id}"
            ) from exc

    def item(self, agency_id: str, item_number: str) -> tuple[int, Item] | None:
        row = self._conn.execute(
            select(items).where(items.c.agency_id == agency_id, items.c.item_number == item_number)
        ).first()
        if row is None:
            return None
        return row.id, Item(agency_id=row.agency_id, item_number=row.item_number, title=row.title)

    # Loans -------------------------------------------------------------------------------
    def _loan_query(self) -> Any:
        return _loan_query()

    @staticmethod
    def _loan(row: Any) -> Loan:
        return Loan(
            id=row.id,
            agency_id=row.agency_id,
            patron_id=row.patron_id,
            item_number=row.item_number,
            loaned_at=row.loaned_at,
            due_date=row.due_date,
            renewal_count=row.renewal_count,
            returned_at=row.returned_at,
        )

    def checkout(
        self,
        agency_id: str,
        patron_pk: int,
        item_pk: int,
        loaned_at: dt.datetime,
        due_date: dt.date,
    ) -> int:
        """Lend an item; ``Conflict`` when it is on loan already (enforced by a unique index)."""
        try:
            with self._conn.begin_nested():
                return int(
                    self._conn.execute(
                        insert(loans)
                        .values(
                            agency_id=agency_id,
                            patron_pk=patron_pk,
                            item_pk=item_pk,
                            loaned_at=loaned_at,
                            due_date=due_date,
                            renewal_count=0,
                        )
                        .returning(loans.c.id)
                    ).scalar_one()
                )
        except IntegrityError as exc:
            raise Conflict("the item is on loan already") from exc

    def loan(self, loan_id: int) -> Loan | None:
        row = self._conn.execute(self._loan_query().where(loans.c.id == loan_id)).first()
        return None if row is None else self._loan(row)

    def loans_with_titles(
        self, patron_pks: list[int], *, active_only: bool = True
    ) -> list[tuple[Loan, str]]:
        """Loans of these patrons with item titles, oldest due first."""
        if not patron_pks:
            return []
        stmt = _ACTIVE_PATRON_LOANS if active_only else _PATRON_LOANS
        rows = self._conn.execute(stmt, {"patron_pks": list(patron_pks)})
        return [(self._loan(r), r.title) for r in rows]

    def active_loans_and_reservations(
        self, agency_id: str, patron_pks: list[int]
    ) -> tuple[list[tuple[Loan, str]], list[Reservation]]:
        """As ``loans_with_titles`` (active only), with ``reservations_for_items`` on their items
        (in no particular order), in one query."""
        if not patron_pks:
            return [], []
        found: dict[int, tuple[Loan, str]] = {}
        held: dict[int, Reservation] = {}
        params = {"agency_id": agency_id, "patron_pks": list(patron_pks)}
        for r in self._conn.execute(_ACTIVE_LOANS_AND_RESERVATIONS, params):
            if r.id not in found:
                found[r.id] = (self._loan(r), r.title)
            if r.reservation_id is not None and r.reservation_id not in held:
                held[r.reservation_id] = Reservation(
                    id=r.reservation_id,
                    agency_id=r.reservation_agency_id,
                    item_number=r.item_number,
                    patron_id=r.reserved_by,
                    created_at=r.reserved_at,
                )
        return list(found.values()), list(held.values())

    def active_loan_of_item(self, agency_id: str, item_number: str) -> Loan | None:
        row = self._conn.execute(
            self._loan_query().where(
                loans.c.agency_id == agency_id,
                items.c.item_number == item_number,
                loans.c.returned_at.is_(None),
            )
        ).first()
        return None if row is None else self._loan(row)

    def renew(self, loan_id: int, new_due_date: dt.date, expected_count: int) -> bool:
        """Renew unless someone else renewed it meanwhile (optimistic check on the count)."""
        result = self._conn.execute(
            _RENEW,
            {
                "loan_id": loan_id,
                "expected_count": expected_count,
                "new_due_date": new_due_date,
                "new_count": expected_count + 1,
            },
        )
        return result.rowcount == 1

    def checkin(self, loan_id: int, at: dt.datetime) -> bool:
        result = self._conn.execute(
            update(loans)
            .where(loans.c.id == loan_id, loans.c.returned_at.is_(None))
            .values(returned_at=at)
        )
        return result.rowcount == 1

    # Reservations ------------------------------------------------------------------------
    def reserve(self, agency_id: str, item_pk: int, patron_pk: int, at: dt.datetime) -> int:
        try:
            with self._conn.begin_nested():
                return int(
                    self._conn.execute(
                        insert(reservations)
                        .values(
                            agency_id=agency_id, item_pk=item_pk, patron_pk=patron_pk, created_at=at
                        )
                        .returning(reservations.c.id)
                    ).scalar_one()
                )
        except IntegrityError as exc:
            raise Conflict("the patron has reserved this item already") from exc

    def reservations_for_items(self, agency_id: str, item_numbers: list[str]) -> list[Reservation]:
        if not item_numbers:
            return []
        rows = self._conn.execute(
            _RESERVATIONS_FOR_ITEMS,
            {"agency_id": agency_id, "item_numbers": list(item_numbers)},
        )
        return [
            Reservation(
                id=r.id,
                agency_id=r.agency_id,
                item_number=r.item_number,
                patron_id=r.patron_id,
                created_at=r.created_at,
            )
            for r in rows
        ]
