"""Staff users of the web UI: argon2 password hashes, scoped to one agency or to all."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import Connection, insert, select, update

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

    def credentials(self, username: str) -> tuple[StaffUser, str] | None:
        """The user and their password hash, for the login check."""
        row = self._conn.execute(
            select(staff_users).where(staff_users.c.username == username)
        ).first()
        if row is None:
            return None
        return StaffUser(row.id, row.username, row.agency_id, row.language), row.password_hash

    def get(self, user_id: int) -> StaffUser | None:
        row = self._conn.execute(select(staff_users).where(staff_users.c.id == user_id)).first()
        return None if row is None else StaffUser(row.id, row.username, row.agency_id, row.language)

    def set_language(self, user_id: int, language: str) -> None:
        self._conn.execute(
            update(staff_users).where(staff_users.c.id == user_id).values(language=language)
        )
