"""Server-side staff sessions, kept under the SHA-256 of the id in the cookie."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import Connection, delete, insert, select, update

from patronlink.storage.tables import staff_sessions as s


@dataclass(frozen=True, slots=True)
class StoredSession:
    user_id: int
    csrf: str
    language: str | None
    notice: str | None
    created_at: dt.datetime
    last_seen_at: dt.datetime


class StaffSessionRepository:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def add(
        self,
        id_hash: str,
        user_id: int,
        csrf: str,
        language: str | None,
        now: dt.datetime,
        notice: str | None = None,
    ) -> None:
        self._conn.execute(
            insert(s).values(
                id_hash=id_hash,
                user_id=user_id,
                csrf=csrf,
                language=language,
                notice=notice,
                created_at=now,
                last_seen_at=now,
            )
        )

    def get(self, id_hash: str) -> StoredSession | None:
        row = self._conn.execute(select(s).where(s.c.id_hash == id_hash)).first()
        if row is None:
            return None
        return StoredSession(
            row.user_id, row.csrf, row.language, row.notice, row.created_at, row.last_seen_at
        )

    def update(
        self,
        id_hash: str,
        *,
        csrf: str,
        language: str | None,
        notice: str | None,
        last_seen_at: dt.datetime,
    ) -> None:
        self._conn.execute(
            update(s)
            .where(s.c.id_hash == id_hash)
            .values(csrf=csrf, language=language, notice=notice, last_seen_at=last_seen_at)
        )

    def touch(self, id_hash: str, now: dt.datetime) -> None:
        self._conn.execute(update(s).where(s.c.id_hash == id_hash).values(last_seen_at=now))

    def delete(self, id_hash: str) -> None:
        self._conn.execute(delete(s).where(s.c.id_hash == id_hash))

    def delete_for_user(self, user_id: int) -> int:
        return int(self._conn.execute(delete(s).where(s.c.user_id == user_id)).rowcount or 0)

    def delete_older(self, *, seen_before: dt.datetime, created_before: dt.datetime) -> int:
        """Sessions past their idle or absolute limit (nobody can use them any more)."""
        stale = (s.c.last_seen_at < seen_before) | (s.c.created_at < created_before)
        return int(self._conn.execute(delete(s).where(stale)).rowcount or 0)
