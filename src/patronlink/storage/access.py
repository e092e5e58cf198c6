"""Staff API tokens: stored as SHA-256 of a 256-bit random secret, scoped to one agency or all."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import Connection, insert, select

from patronlink.storage.tables import api_tokens


@dataclass(frozen=True, slots=True)
class TokenScope:
    token_id: int
    name: str
    agency_id: str | None  # None: every agency

    def allows(self, agency_id: str) -> bool:
        return self.agency_id is None or self.agency_id == agency_id


class TokenRepository:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def add(self, name: str, agency_id: str | None, token_hash: str, now: dt.datetime) -> int:
        return int(
            self._conn.execute(
                insert(api_tokens)
                .values(name=name, agency_id=agency_id, token_hash=token_hash, created_at=now)
                .returning(api_tokens.c.id)
            ).scalar_one()
        )

    def scope(self, token_hash: str) -> TokenScope | None:
        row = self._conn.execute(
            select(api_tokens.c.id, api_tokens.c.name, api_tokens.c.agency_id).where(
                api_tokens.c.token_hash == token_hash, api_tokens.c.revoked_at.is_(None)
            )
        ).first()
        return None if row is None else TokenScope(row.id, row.name, row.agency_id)
