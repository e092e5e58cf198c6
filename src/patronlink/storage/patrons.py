"""Patrons and the numbers they are known by."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, bindparam, delete, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from patronlink.domain.errors import Conflict
from patronlink.domain.patron import Patron, PatronStatus
from patronlink.storage.tables import patron_phones, patrons


def patron_row_values(patron: Patron) -> dict[str, Any]:
    return {
        "name": patron.name,
        "status": patron.status.value,
        "expiry_date": patron.expiry_date,
        "email": patron.email,
        "sms_number": patron.sms_number,
        "want_sms": patron.want_sms,
        "address_lines": list(patron.address_lines),
        "zip": patron.zip,
        "birth_date": patron.birth_date,
        "home_branch": patron.home_branch,
        "source": patron.source,
        "external_id": patron.external_id,
        "extra": dict(patron.extra),
        "phones_unparsed": list(patron.phones_unparsed),
    }


# Every patron with a number, and each patron's phone numbers (kind "phone", in order), in one
# query. Built once: renewal by SMS runs it on every request (see ``by_number``).
_PHONES = patron_phones.alias("phones")
_BY_NUMBER = (
    select(patrons, _PHONES.c.number.label("phone_number"))
    .outerjoin(_PHONES, (_PHONES.c.patron_pk == patrons.c.id) & (_PHONES.c.kind == "phone"))
    .where(
        patrons.c.id.in_(
            select(patron_phones.c.patron_pk).where(
                patron_phones.c.agency_id == bindparam("agency_id"),
                patron_phones.c.number == bindparam("number"),
            )
        )
    )
    .order_by(patrons.c.patron_id, patrons.c.id, _PHONES.c.position)
)


class PatronRepository:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def add(self, patron: Patron, now: dt.datetime, *, pin_hash: str | None = None) -> int:
        """Insert a patron; raises ``Conflict`` when the patron id is taken in the agency."""
        try:
            with self._conn.begin_nested():
                pk: int = self._conn.execute(
                    insert(patrons)
                    .values(
                        agency_id=patron.agency_id,
                        patron_id=patron.patron_id,
                        pin_hash=pin_hash,
                        created_at=now,
                        updated_at=now,
                        **patron_row_values(patron),
                    )
                    .returning(patrons.c.id)
                ).scalar_one()
        except IntegrityError as exc:
            raise Conflict(
                f"patron id {patron.patron_id!r} is already registered in {patron.agency_id}"
            ) from exc
        self._write_phones(pk, patron)
        return pk

    def update(self, pk: int, patron: Patron, now: dt.datetime) -> None:
        self._conn.execute(
            update(patrons)
            .where(patrons.c.id == pk)
            .values(updated_at=now, **patron_row_values(patron))
        )
        self._conn.execute(delete(patron_phones).where(patron_phones.c.patron_pk == pk))
        self._write_phones(pk, patron)

    def set_status(self, pk: int, status: PatronStatus, now: dt.datetime) -> None:
        self._conn.execute(
            update(patrons).where(patrons.c.id == pk).values(status=status.value, updated_at=now)
        )

    def _write_phones(self, pk: int, patron: Patron) -> None:
        rows = [
            {
                "patron_pk": pk,
                "position": i,
                "agency_id": patron.agency_id,
                "number": n,
                "kind": "phone",
            }
            for i, n in enumerate(patron.phones)
        ]
        if patron.sms_number:
            rows.append(
                {
                    "patron_pk": pk,
                    "position": len(rows),
                    "agency_id": patron.agency_id,
                    "number": patron.sms_number,
                    "kind": "sms",
                }
            )
        if rows:
            self._conn.execute(insert(patron_phones), rows)

    def pk_of(self, agency_id: str, patron_id: str) -> int | None:
        return self._conn.execute(
            select(patrons.c.id).where(
                patrons.c.agency_id == agency_id, patrons.c.patron_id == patron_id
            )
        ).scalar_one_or_none()

    def get(self, agency_id: str, patron_id: str) -> Patron | None:
        found = self._select(patrons.c.agency_id == agency_id, patrons.c.patron_id == patron_id)
        return found[0][1] if found else None

    def get_with_pk(self, agency_id: str, patron_id: str) -> tuple[int, Patron] | None:
        found = self._select(patrons.c.agency_id == agency_id, patrons.c.patron_id == patron_id)
        return found[0] if found else None

    def many(self, pks: Sequence[int]) -> list[tuple[int, Patron]]:
        """The patrons with these primary keys (used in batches by patron import)."""
        return self._select(patrons.c.id.in_(list(pks))) if pks else []

    def by_number(self, agency_id: str, e164: str) -> list[tuple[int, Patron]]:
        """Every patron of the agency with this number as a phone or SMS number."""
        rows: dict[int, tuple[Any, list[str]]] = {}
        for row in self._conn.execute(_BY_NUMBER, {"agency_id": agency_id, "number": e164}):
            found = rows.setdefault(row.id, (row._mapping, []))
            if row.phone_number is not None:
                found[1].append(row.phone_number)
        return [(pk, _to_domain(row, tuple(phones))) for pk, (row, phones) in rows.items()]

    def search(
        self,
        agency_id: str | None,
        query: str | None = None,
        *,
        limit: int = 50,
        offset: int = 0,
        status: PatronStatus | None = None,
    ) -> list[Patron]:
        conds = self._search_conditions(agency_id, query, status)
        return [
            p
            for _, p in self._select(
                *conds, order=(patrons.c.agency_id, patrons.c.patron_id), limit=limit, offset=offset
            )
        ]

    def count(
        self, agency_id: str | None, query: str | None = None, *, status: PatronStatus | None = None
    ) -> int:
        """How many patrons ``search`` would find with no limit."""
        conds = self._search_conditions(agency_id, query, status)
        stmt = select(func.count()).select_from(patrons).where(*conds)
        return int(self._conn.execute(stmt).scalar_one())

    @staticmethod
    def _search_conditions(
        agency_id: str | None, query: str | None, status: PatronStatus | None
    ) -> list[Any]:
        """``agency_id`` None searches every agency (an administrator's list)."""
        conds: list[Any] = [] if agency_id is None else [patrons.c.agency_id == agency_id]
        if status is not None:
            conds.append(patrons.c.status == status.value)
        if query:
            # LIKE wildcards in the query are matched literally.
            escaped = query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            like = f"%{escaped.lower()}%"
            numbers = select(patron_phones.c.patron_pk).where(
                patron_phones.c.number.like(f"%{escaped}%", escape="\\"),
            )
            if agency_id is not None:
                numbers = numbers.where(patron_phones.c.agency_id == agency_id)
            conds.append(
                or_(
                    func.lower(patrons.c.name).like(like, escape="\\"),
                    patrons.c.patron_id == query,
                    patrons.c.id.in_(numbers),
                )
            )
        return conds

    def _select(
        self, *conds: Any, order: Any = None, limit: int | None = None, offset: int = 0
    ) -> list[tuple[int, Patron]]:
        stmt = select(patrons).where(*conds)
        if order is not None:
            stmt = stmt.order_by(*(order if isinstance(order, tuple) else (order,)))
        if limit is not None:
            stmt = stmt.limit(limit).offset(offset)
        rows = self._conn.execute(stmt).mappings().all()
        if not rows:
            return []
        phones: dict[int, list[str]] = {r["id"]: [] for r in rows}
        for p in self._conn.execute(
            select(patron_phones.c.patron_pk, patron_phones.c.number)
            .where(patron_phones.c.patron_pk.in_(phones), patron_phones.c.kind == "phone")
            .order_by(patron_phones.c.patron_pk, patron_phones.c.position)
        ):
            phones[p.patron_pk].append(p.number)
        return [(r["id"], _to_domain(r, tuple(phones[r["id"]]))) for r in rows]


def _to_domain(row: Any, phones: tuple[str, ...]) -> Patron:
    return Patron(
        agency_id=row["agency_id"],
        patron_id=row["patron_id"],
        name=row["name"],
        status=PatronStatus(row["status"]),
        expiry_date=row["expiry_date"],
        email=row["email"],
        phones=phones,
        sms_number=row["sms_number"],
        want_sms=bool(row["want_sms"]),
        address_lines=tuple(row["address_lines"] or ()),
        zip=row["zip"],
        birth_date=row["birth_date"],
        home_branch=row["home_branch"],
        source=row["source"],
        external_id=row["external_id"],
        extra=dict(row["extra"] or {}),
        phones_unparsed=tuple(row["phones_unparsed"] or ()),
    )
