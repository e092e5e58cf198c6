"""The throttle's counts, one row per key, read and written under a lock.

``lock`` makes the rows exist, then reads them ``FOR UPDATE`` in key order (PostgreSQL), so two
processes that reserve the same key queue on its row and the second sees the first's count; on
SQLite the transaction's ``BEGIN IMMEDIATE`` already holds the database's one write lock.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, and_, delete, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from patronlink.domain.throttle import KeyState
from patronlink.storage.tables import auth_throttle as t

MAX_KEY_LENGTH = 255


class ThrottleRepository:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def lock(self, keys: Iterable[str], now: dt.datetime) -> dict[str, KeyState]:
        """The state of every key, each row locked until the transaction ends."""
        wanted = sorted(set(keys))  # each at most MAX_KEY_LENGTH (services/throttle.py)
        if not wanted:
            return {}
        dialect = self._conn.dialect.name
        make = pg_insert if dialect == "postgresql" else sqlite_insert
        rows = [{"key": k, "count": 0, "strikes": 0, "updated_at": now} for k in wanted]
        self._conn.execute(make(t).values(rows).on_conflict_do_nothing(index_elements=["key"]))
        found = self._conn.execute(
            select(t).where(t.c.key.in_(wanted)).order_by(t.c.key).with_for_update()
        )
        return {row.key: _state(row) for row in found}

    def peek(self, keys: Iterable[str]) -> dict[str, KeyState]:
        """The state of the keys that have one, without locking or creating anything."""
        wanted = sorted(set(keys))
        if not wanted:
            return {}
        found = self._conn.execute(select(t).where(t.c.key.in_(wanted)))
        return {row.key: _state(row) for row in found}

    def save(self, key: str, state: KeyState, now: dt.datetime) -> None:
        self._conn.execute(
            update(t)
            .where(t.c.key == key)
            .values(
                count=state.count,
                window_start=state.window_start,
                blocked_until=state.blocked_until,
                strikes=state.strikes,
                trusted_until=state.trusted_until,
                updated_at=now,
            )
        )

    def purge(self, now: dt.datetime, quiet_since: dt.datetime) -> int:
        """Forget keys untouched since ``quiet_since`` that neither block nor trust anything."""
        result = self._conn.execute(
            delete(t).where(
                and_(
                    t.c.updated_at < quiet_since,
                    or_(t.c.blocked_until.is_(None), t.c.blocked_until < now),
                    or_(t.c.trusted_until.is_(None), t.c.trusted_until < now),
                )
            )
        )
        return int(result.rowcount or 0)


def _state(row: Any) -> KeyState:
    return KeyState(
        count=row._mapping["count"],  # .count is the tuple method
        window_start=row.window_start,
        blocked_until=row.blocked_until,
        strikes=row.strikes,
        trusted_until=row.trusted_until,
    )
