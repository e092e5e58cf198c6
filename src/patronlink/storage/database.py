"""The unit of work: one transaction with the repositories bound to it.

This module is the way into storage for the rest of the program: ``Database`` opens
transactions, ``Repositories`` reaches every repository of one, and the value types that callers
pass to repositories or get back from them are re-exported here (``__all__``), so the web and the
worker import nothing else of ``storage`` (an import-linter contract in ``pyproject.toml``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Generic, TypeVar, overload

from sqlalchemy import Connection, Engine, text

from patronlink.storage.access import TokenRepository, TokenScope
from patronlink.storage.agencies import (
    AgencyRepository,
    ImportSourceRepository,
    IntegrationUserRepository,
)
from patronlink.storage.alerts import AlertQueries
from patronlink.storage.audit import AuditEntry, AuditFilter, AuditRepository
from patronlink.storage.circulation import CirculationRepository
from patronlink.storage.circulation_desk import DeskRepository
from patronlink.storage.failures import describe, is_unavailable
from patronlink.storage.idempotency import IdempotencyRepository
from patronlink.storage.import_runs import (
    ImportRunRepository,
    RunRow,
    ScheduledSource,
    SourceStateRepository,
    scheduled_sources,
)
from patronlink.storage.imports import ImportStore
from patronlink.storage.inbound import InboundRepository
from patronlink.storage.outbox import NEVER_STALE, MessageFilter, OutboxRepository
from patronlink.storage.overview import OverviewQueries
from patronlink.storage.patron_lifecycle import PatronLifecycleRepository
from patronlink.storage.patrons import PatronRepository
from patronlink.storage.pauses import PauseRepository
from patronlink.storage.staff_sessions import StaffSessionRepository
from patronlink.storage.staff_users import StaffUser, StaffUserRepository
from patronlink.storage.throttle import ThrottleRepository

__all__ = [
    "NEVER_STALE",
    "AuditEntry",
    "AuditFilter",
    "Database",
    "MessageFilter",
    "Repositories",
    "RunRow",
    "StaffUser",
    "TokenScope",
    "describe",
    "is_unavailable",
]

_WRITE_PROBE = text("UPDATE alembic_version SET version_num = version_num WHERE 1 = 0")

_R = TypeVar("_R")


class _Built(Generic[_R]):
    """A repository of ``Repositories``, built on the transaction's connection when first used.

    ``functools.cached_property`` without its lock (on Python 3.11 every first read takes a lock
    that the property shares across all instances, so across threads): a unit of work belongs
    to one thread. The built repository is stored in the
    instance's ``__dict__``, where later reads find it without calling this descriptor.
    """

    def __init__(self, build: Callable[[Connection], _R]) -> None:
        self._build = build
        self._name = ""

    def __set_name__(self, owner: type[Any], name: str) -> None:
        self._name = name

    @overload
    def __get__(self, repos: None, owner: type[Any]) -> _Built[_R]: ...
    @overload
    def __get__(self, repos: Repositories, owner: type[Any]) -> _R: ...
    def __get__(self, repos: Repositories | None, owner: type[Any]) -> _Built[_R] | _R:
        if repos is None:
            return self
        built = self._build(repos._conn)
        repos.__dict__[self._name] = built
        return built


class Repositories:
    """Every repository of one transaction; a transaction builds only those it uses.

    Its connection is storage's own: callers reach the database only through these repositories.
    """

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    agencies = _Built(AgencyRepository)
    integration_users = _Built(IntegrationUserRepository)
    import_sources = _Built(ImportSourceRepository)
    patrons = _Built(PatronRepository)
    circulation = _Built(CirculationRepository)
    tokens = _Built(TokenRepository)
    outbox = _Built(OutboxRepository)
    inbound = _Built(InboundRepository)
    pauses = _Built(PauseRepository)
    idempotency = _Built(IdempotencyRepository)
    audit = _Built(AuditRepository)
    lifecycle = _Built(PatronLifecycleRepository)
    desk = _Built(DeskRepository)
    import_runs = _Built(ImportRunRepository)
    source_state = _Built(SourceStateRepository)
    overview = _Built(OverviewQueries)
    alerts = _Built(AlertQueries)
    staff_users = _Built(StaffUserRepository)
    staff_sessions = _Built(StaffSessionRepository)
    throttle = _Built(ThrottleRepository)
    # The patron import's bulk statements, for ``Database.long_transaction`` (it may start a
    # writer thread on PostgreSQL: its owner closes it before the transaction ends).
    imports = _Built(ImportStore)

    def scheduled_sources(self) -> list[ScheduledSource]:
        """Every import source that has a schedule."""
        return scheduled_sources(self._conn)


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
            yield Repositories(conn)

    @contextmanager
    def long_transaction(self, *, keep: bool = True) -> Iterator[Repositories]:
        """One transaction for long work (a patron import spans its whole feed).

        Like ``transaction()``, it holds this process's writer lock on SQLite, so the process's
        other transactions queue behind it, and it rolls back on any error; with ``keep=False``
        (a dry run) it rolls back at the end too. Its repositories include ``imports``, the
        import's bulk statements on the driver's own connection (the raw fast path).
        """
        with self._serialised(), self.engine.connect() as conn, conn.begin() as tx:
            yield Repositories(conn)
            if not keep:
                tx.rollback()

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
