"""Staff users of the web UI: argon2 password hashes, scoped to one agency or to all."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import Connection, func, insert, select, update

from patronlink.storage.tables import staff_users


@dataclass(frozen=True, slots=True)
class StaffUser:
    id: int
    username: str
    agency_id: str | None  # None: an administrator, who sees every agency
    language: str

    @property
    def is_admin(self) -> bool:
        return self.agency_id is None

    def allows(self, agency_id: str) -> bool:
        return self.agency_id is None or self.agency_id == agency_id


@dataclass(frozen=True, slots=True)
class StaffUserRow:
    """A user as ``patronlink user list`` shows them."""

    id: int
    username: str
    agency_id: str | None
    language: str
    created_at: dt.datetime
    disabled_at: dt.datetime | None


class StaffUserRepository:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def add(
        self,
        username: str,
        password_hash: str,
        agency_id: str | None,
        language: str,
        now: dt.datetime,
    ) -> int:
        return int(
            self._conn.execute(
                insert(staff_users)
                .values(
                    username=username,
                    password_hash=password_hash,
                    agency_id=agency_id,
                    language=language,
                    created_at=now,
                )
                .returning(staff_users.c.id)
            ).scalar_one()
        )

    def exists(self, username: str) -> bool:
        found = self._conn.execute(
            select(staff_users.c.id).where(staff_users.c.username == username)
        ).first()
        return found is not None

    def credentials(self, username: str) -> tuple[StaffUser, str, bool] | None:
        """The user, their password hash and whether they are disabled, for the login check."""
        row = self._conn.execute(
            select(staff_users).where(staff_users.c.username == username)
        ).first()
        if row is None:
            return None
        user = StaffUser(row.id, row.username, row.agency_id, row.language)
        return user, row.password_hash, row.disabled_at is not None

    def get(self, user_id: int) -> StaffUser | None:
        """The user, unless they are disabled."""
        row = self._conn.execute(
            select(staff_users).where(
                staff_users.c.id == user_id, staff_users.c.disabled_at.is_(None)
            )
        ).first()
        return None if row is None else StaffUser(row.id, row.username, row.agency_id, row.language)

    def id_of(self, username: str) -> int | None:
        found = self._conn.execute(
            select(staff_users.c.id).where(staff_users.c.username == username)
        ).scalar_one_or_none()
        return None if found is None else int(found)

    def listing(self, limit: int, offset: int = 0) -> list[StaffUserRow]:
        rows = self._conn.execute(
            select(staff_users).order_by(staff_users.c.username).limit(limit).offset(offset)
        ).all()
        return [
            StaffUserRow(r.id, r.username, r.agency_id, r.language, r.created_at, r.disabled_at)
            for r in rows
        ]

    def count(self) -> int:
        return int(self._conn.execute(select(func.count()).select_from(staff_users)).scalar_one())

    def set_disabled(self, user_id: int, when: dt.datetime | None) -> None:
        self._conn.execute(
            update(staff_users).where(staff_users.c.id == user_id).values(disabled_at=when)
        )

    def set_password_hash(self, user_id: int, password_hash: str) -> None:
        self._conn.execute(
            update(staff_users)
            .where(staff_users.c.id == user_id)
            .values(password_hash=password_hash)
        )

    def set_language(self, user_id: int, language: str) -> None:
        self._conn.execute(
            update(staff_users).where(staff_users.c.id == user_id).values(language=language)
        )
