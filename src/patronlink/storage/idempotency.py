"""Idempotency keys of queued texts: which message a (token, agency, key) made, and with what
request."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import Connection, delete, insert, select
from sqlalchemy.exc import IntegrityError

from patronlink.domain.errors import Conflict
from patronlink.storage.tables import idempotency_keys


@dataclass(frozen=True, slots=True)
class RememberedRequest:
    request_hash: str
    message_id: int
    created_at: dt.datetime


class IdempotencyRepository:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def find(self, token_id: int, agency_id: str, key: str) -> RememberedRequest | None:
        t = idempotency_keys.c
        row = self._conn.execute(
            select(t.request_hash, t.message_id, t.created_at).where(
                t.token_id == token_id, t.agency_id == agency_id, t.key == key
            )
        ).first()
        return None if row is None else RememberedRequest(*row)

    def remember(
        self,
        token_id: int,
        agency_id: str,
        key: str,
        request_hash: str,
        message_id: int,
        now: dt.datetime,
    ) -> None:
        """``Conflict`` when a concurrent request took the key first (the transaction is then
        unusable: roll it back and look again)."""
        try:
            self._conn.execute(
                insert(idempotency_keys).values(
                    token_id=token_id,
                    agency_id=agency_id,
                    key=key,
                    request_hash=request_hash,
                    message_id=message_id,
                    created_at=now,
                )
            )
        except IntegrityError as exc:
            raise Conflict("a request with this Idempotency-Key is being handled") from exc

    def forget_before(self, cutoff: dt.datetime) -> int:
        """Drop keys older than ``cutoff`` (walks the created_at index; usually none)."""
        result = self._conn.execute(
            delete(idempotency_keys).where(idempotency_keys.c.created_at < cutoff)
        )
        return int(result.rowcount)
