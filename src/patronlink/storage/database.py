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
from patronlink.storage.inbound import InboundRepository
from patronlink.storage.outbox import OutboxRepository
from patronlink.storage.patron_lifecycle import PatronLifecycleRepository
from patronlink.storage.patrons import PatronRepository


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

    def dispose(self) -> None:
        self.engine.dispose()
