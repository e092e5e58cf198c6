"""Staff API tokens: stored as SHA-256 of a 256-bit random secret, scoped to one agency or all."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, func, insert, or_, select, update

from patronlink.storage.tables import api_tokens


@dataclass(frozen=True, slots=True)
class TokenScope:
    token_id: int
    name: str
    agency_id: str | None  # None: every agency

    def allows(self, agency_id: str) -> bool:
        return self.agency_id is None or self.agency_id == agency_id


@dataclass(frozen=True, slots=True)
class TokenInfo:
    """A token as listed: never the token itself, which is shown once at creation."""

    id: int
    name: str
    agency_id: str | None
    created_at: dt.datetime
    expires_at: dt.datetime | None
    last_used_at: dt.datetime | None
    revoked_at: dt.datetime | None

    def state(self, now: dt.datetime) -> str:
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= now:
            return "expired"
        return "active"


# last_used_at is written at most this often per token: a busy integration does not turn every
# request into a write.
LAST_USED_GRANULARITY = dt.timedelta(minutes=1)


class TokenRepository:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def add(
        self,
        name: str,
        agency_id: str | None,
        token_hash: str,
        now: dt.datetime,
        expires_at: dt.datetime | None = None,
    ) -> int:
        return int(
            self._conn.execute(
                insert(api_tokens)
                .values(
                    name=name,
                    agency_id=agency_id,
                    token_hash=token_hash,
                    created_at=now,
                    expires_at=expires_at,
                )
                .returning(api_tokens.c.id)
            ).scalar_one()
        )

    def scope(self, token_hash: str, now: dt.datetime | None = None) -> TokenScope | None:
        """The token's scope unless it is revoked or (given ``now``) expired.

        Given ``now``, a use is recorded as ``last_used_at`` when the last one is older than
        ``LAST_USED_GRANULARITY``: decided on the row just read, so that most requests write
        nothing (on SQLite even an UPDATE that matches no row takes the write lock).
        """
        conds = [api_tokens.c.token_hash == token_hash, api_tokens.c.revoked_at.is_(None)]
        if now is not None:
            conds.append(or_(api_tokens.c.expires_at.is_(None), api_tokens.c.expires_at > now))
        row = self._conn.execute(
            select(
                api_tokens.c.id,
                api_tokens.c.name,
                api_tokens.c.agency_id,
                api_tokens.c.last_used_at,
            ).where(*conds)
        ).first()
        if row is None:
            return None
        if now is not None and (
            row.last_used_at is None or row.last_used_at < now - LAST_USED_GRANULARITY
        ):
            self._conn.execute(
                update(api_tokens).where(api_tokens.c.id == row.id).values(last_used_at=now)
            )
        return TokenScope(row.id, row.name, row.agency_id)

    def list(
        self, agency_id: str | None = None, *, limit: int | None = None, offset: int = 0
    ) -> list[TokenInfo]:
        """Newest first; ``agency_id`` narrows to that agency's tokens."""
        stmt = select(api_tokens).order_by(api_tokens.c.id.desc()).offset(offset)
        if agency_id is not None:
            stmt = stmt.where(api_tokens.c.agency_id == agency_id)
        if limit is not None:
            stmt = stmt.limit(limit)
        return [_token_info(r) for r in self._conn.execute(stmt)]

    def count(self, agency_id: str | None = None) -> int:
        stmt = select(func.count()).select_from(api_tokens)
        if agency_id is not None:
            stmt = stmt.where(api_tokens.c.agency_id == agency_id)
        return int(self._conn.execute(stmt).scalar_one())

    def get(self, token_id: int) -> TokenInfo | None:
        row = self._conn.execute(select(api_tokens).where(api_tokens.c.id == token_id)).first()
        return None if row is None else _token_info(row)

    def revoke(self, token_id: int, now: dt.datetime) -> bool:
        """False when there is no such token or it was revoked already."""
        done = self._conn.execute(
            update(api_tokens)
            .where(api_tokens.c.id == token_id, api_tokens.c.revoked_at.is_(None))
            .values(revoked_at=now)
        )
        return bool(done.rowcount)


def _token_info(r: Any) -> TokenInfo:
    return TokenInfo(
        r.id, r.name, r.agency_id, r.created_at, r.expires_at, r.last_used_at, r.revoked_at
    )
