"""The unit of work: one transaction with the repositories bound to it."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy import Connection, Engine, text

from patronlink.storage.access import TokenRepository
from patronlink.storage.agencies import (
    AgencyRepository,
    ImportSourceRepository,
    IntegrationUserRepository,
)
from patronlink.storage.audit import AuditRepository
from patronlink.storage.circulation import CirculationRepository
from patronlink.storage.circulation_desk import DeskRepository
from patronlink.storage.failures import describe
from patronlink.storage.idempotency import IdempotencyRepository
from patronlink.storage.inbound import InboundRepository
from patronlink.storage.outbox import OutboxRepository
from patronlink.storage.patron_lifecycle import PatronLifecycleRepository
from patronlink.storage.patrons import PatronRepository
from patronlink.storage.pauses import PauseRepository

_WRITE_PROBE = text("UPDATE alembic_version SET version_num = version_num WHERE 1 = 0")


@dataclass(slots=True)
class Repositories:
    conn: Connection
    agencies: AgencyRepository
    integration_users: IntegrationUserRepository
    import_sources: ImportSourceRepository
    patrons: PatronRepository
    circulation: CirculationRepository
    tokens: TokenRepository
    outbox: OutboxRepository
    inbound: InboundRepository
    pauses: PauseRepository
    idempotency: IdempotencyRepository
    audit: AuditRepository
    lifecycle: PatronLifecycleRepository
    desk: DeskRepository


class Database:
    """Owns the engine; ``transaction()`` commits on success and rolls back on any error."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        # SQLite has one writer at a time, and a thread that finds the lock taken polls it with
        # sleeps of up to 100 ms (its busy handler). Queueing this process's transactions on a
        # lock instead hands the database over the moment it is free: under 32 concurrent
        # requests this cut the tail latency of renewal by SMS several-fold (bench/inbound.py).
        # Other processes still meet the busy timeout.
        self._writer = threading.Lock() if engine.dialect.name == "sqlite" else None

    @contextmanager
    def transaction(self) -> Iterator[Repositories]:
        with self._serialised(), self.engine.begin() as conn:
            yield Repositories(
                conn=conn,
                agencies=AgencyRepository(conn),
                integration_users=IntegrationUserRepository(conn),
                import_sources=ImportSourceRepository(conn),
                patrons=PatronRepository(conn),
                circulation=CirculationRepository(conn),
                tokens=TokenRepository(conn),
                outbox=OutboxRepository(conn),
                inbound=InboundRepository(conn),
                pauses=PauseRepository(conn),
                idempotency=IdempotencyRepository(conn),
                audit=AuditRepository(conn),
                lifecycle=PatronLifecycleRepository(conn),
                desk=DeskRepository(conn),
            )

    @contextmanager
    def _serialised(self) -> Iterator[None]:
        if self._writer is None:
            yield
            return
        with self._writer:
            yield

    def ping(self) -> bool:
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except Exception:  # noqa: BLE001 - any failure means "not ready"
            return False
        return True

    def probe_write(self) -> str | None:
        """None when the database takes a write; otherwise why not, in one line.

        A readiness probe: an UPDATE that matches no row, rolled back, so it changes nothing and
        locks no row, yet a read-only database (PostgreSQL's ``default_transaction_read_only``,
        a replica, a SQLite file opened read-only) refuses it where a ``SELECT 1`` would pass.
        """
        try:
            with self._serialised(), self.engine.connect() as conn, conn.begin() as tx:
                conn.execute(_WRITE_PROBE)
                tx.rollback()
        except Exception as exc:  # noqa: BLE001 - any failure means "not ready", with its reason
            return describe(exc)
        return None

    def dispose(self) -> None:
        self.engine.dispose()
