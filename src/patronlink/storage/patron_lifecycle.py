"""Writes of a patron's lifecycle: status with a reason, removal, and anonymisation.

Anonymisation reaches every table that can hold the person: the patron row and its numbers, the
texts sent to numbers no other patron of the agency has, the inbound SMS from those numbers or
that name the patron, the import state, and the audit log's references to the patron id.
Loans and reservations stay, pointing at the anonymous row.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection

from sqlalchemy import Connection, String, and_, cast, delete, exists, or_, select, update

from patronlink.domain.patron import Patron
from patronlink.storage.patrons import patron_row_values
from patronlink.storage.tables import (
    audit_log,
    import_patron_state,
    inbound_sms,
    loans,
    messages,
    patron_phones,
    patrons,
)

ERASED = ""  # what a text or number becomes; the columns are NOT NULL
ANONYMOUS_PREFIX = "anonymised-"  # the patron id an anonymised row gets, with its row id


class PatronLifecycleRepository:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def set_status(self, pk: int, patron: Patron, reason: str | None, now: dt.datetime) -> None:
        self._conn.execute(
            update(patrons)
            .where(patrons.c.id == pk)
            .values(status=patron.status.value, status_reason=reason, updated_at=now)
        )

    def status_reason(self, pk: int) -> str | None:
        found = self._conn.execute(
            select(patrons.c.status_reason).where(patrons.c.id == pk)
        ).scalar_one_or_none()
        return None if found is None else str(found)

    def remove(self, pk: int) -> None:
        """A rejected self-registration: it has no loans, so nothing else refers to it."""
        self._conn.execute(delete(patrons).where(patrons.c.id == pk))

    def anonymise(
        self,
        pk: int,
        old: Patron,
        new: Patron,
        now: dt.datetime,
        *,
        numbers: Collection[str],
    ) -> None:
        """Erase ``old`` from every table; ``numbers`` are the person's own (not shared)."""
        values = patron_row_values(new)
        self._conn.execute(
            update(patrons)
            .where(patrons.c.id == pk)
            .values(
                patron_id=new.patron_id,
                pin_hash=None,
                status_reason=None,
                updated_at=now,
                **values,
            )
        )
        self._conn.execute(delete(patron_phones).where(patron_phones.c.patron_pk == pk))
        self._conn.execute(delete(import_patron_state).where(import_patron_state.c.patron_pk == pk))
        if numbers:
            # A text still waiting to go to the person is cancelled: there is no number left.
            self._conn.execute(
                update(messages)
                .where(
                    messages.c.agency_id == old.agency_id,
                    messages.c.to_number.in_(numbers),
                    messages.c.status == "queued",
                )
                .values(status="cancelled", updated_at=now)
            )
            self._conn.execute(
                update(messages)
                .where(messages.c.agency_id == old.agency_id, messages.c.to_number.in_(numbers))
                .values(to_number=ERASED, text=ERASED, updated_at=now)
            )
        # Inbound texts from the person's numbers, or that name the patron among those matched.
        named = cast(inbound_sms.c.patrons_matched, String).like(
            f'%"{_like_escape(old.patron_id)}"%', escape="\\"
        )
        condition = named if not numbers else (named | inbound_sms.c.number.in_(numbers))
        rows = self._conn.execute(
            select(inbound_sms.c.id, inbound_sms.c.number, inbound_sms.c.patrons_matched).where(
                inbound_sms.c.agency_id == old.agency_id, condition
            )
        ).all()
        for row in rows:
            matched = [
                new.patron_id if p == old.patron_id else p for p in (row.patrons_matched or [])
            ]
            own = row.number in numbers
            self._conn.execute(
                update(inbound_sms)
                .where(inbound_sms.c.id == row.id)
                .values(
                    patrons_matched=matched,
                    **({"number": ERASED, "text": ERASED, "command": None} if own else {}),
                )
            )
        self._conn.execute(
            update(audit_log)
            .where(
                audit_log.c.agency_id == old.agency_id,
                audit_log.c.object_kind == "patron",
                audit_log.c.object_id == old.patron_id,
            )
            .values(object_id=new.patron_id)
        )

    def past_retention(
        self, agency_id: str, expired_before: dt.date, unchanged_since: dt.datetime, limit: int
    ) -> list[str]:
        """Patron ids due for anonymisation: expired before ``expired_before``, or inactive and
        unchanged since ``unchanged_since``; never one with a loan out, never one done already."""
        active_loan = exists().where(
            loans.c.patron_pk == patrons.c.id, loans.c.returned_at.is_(None)
        )
        stmt = (
            select(patrons.c.patron_id)
            .where(
                patrons.c.agency_id == agency_id,
                ~patrons.c.patron_id.like(f"{ANONYMOUS_PREFIX}%"),
                ~active_loan,
                or_(
                    patrons.c.expiry_date < expired_before,
                    and_(patrons.c.status == "inactive", patrons.c.updated_at < unchanged_since),
                ),
            )
            .order_by(patrons.c.patron_id)
            .limit(limit)
        )
        return list(self._conn.execute(stmt).scalars())

    def numbers_shared(self, agency_id: str, pk: int, numbers: Collection[str]) -> set[str]:
        """Which of ``numbers`` another patron of the agency is also known by."""
        if not numbers:
            return set()
        found = self._conn.execute(
            select(patron_phones.c.number).where(
                patron_phones.c.agency_id == agency_id,
                patron_phones.c.number.in_(numbers),
                patron_phones.c.patron_pk != pk,
            )
        ).scalars()
        return set(found)


def _like_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
