"""Import runs, their record errors, and each source's lock and schedule state.

The two claims are single conditional UPDATEs on the source's ``import_source_state`` row, so that
any number of processes can race for them: on PostgreSQL the row lock makes a second UPDATE wait
and then re-check its WHERE against the committed row; on SQLite ``BEGIN IMMEDIATE`` serialises
writers. Exactly one claimant sees ``rowcount == 1``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, and_, func, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from patronlink.domain.import_records import RecordError, Severity
from patronlink.domain.import_runs import RunCounts, RunStatus, Trigger
from patronlink.storage.tables import (
    import_run_errors,
    import_runs,
    import_source_state,
    import_sources,
)

# The outcome recorded for a run whose process stopped before it could record one.
INTERRUPTED = (
    "interrupted: the process running the import stopped before it recorded the outcome "
    "(its hold on the source expired); the run's changes were applied in full or not at all"
)


@dataclass(frozen=True, slots=True)
class RunRow:
    id: int
    source_id: str
    agency_id: str
    trigger: Trigger
    status: RunStatus
    started_at: dt.datetime
    finished_at: dt.datetime | None
    due_at: dt.datetime | None
    counts: RunCounts
    message: str | None


def run_row(row: Any) -> RunRow:
    return RunRow(
        id=row.id,
        source_id=row.source_id,
        agency_id=row.agency_id,
        trigger=Trigger(row.trigger),
        status=RunStatus(row.status),
        started_at=row.started_at,
        finished_at=row.finished_at,
        due_at=row.due_at,
        counts=RunCounts(
            records=row.records,
            created=row.created,
            updated=row.updated,
            unchanged=row.unchanged,
            deactivated=row.deactivated,
            failed=row.failed,
            warnings=row.warnings,
        ),
        message=row.message,
    )


class ImportRunRepository:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def add(
        self,
        source_id: str,
        agency_id: str,
        trigger: Trigger,
        now: dt.datetime,
        due_at: dt.datetime | None = None,
    ) -> int:
        return int(
            self._conn.execute(
                insert(import_runs)
                .values(
                    source_id=source_id,
                    agency_id=agency_id,
                    trigger=trigger.value,
                    status=RunStatus.RUNNING.value,
                    started_at=now,
                    due_at=due_at,
                    records=0,
                    created=0,
                    updated=0,
                    unchanged=0,
                    deactivated=0,
                    failed=0,
                    warnings=0,
                )
                .returning(import_runs.c.id)
            ).scalar_one()
        )

    def finish(
        self,
        run_id: int,
        status: RunStatus,
        counts: RunCounts,
        message: str | None,
        now: dt.datetime,
    ) -> None:
        self._conn.execute(
            update(import_runs)
            .where(import_runs.c.id == run_id)
            .values(
                status=status.value,
                finished_at=now,
                records=counts.records,
                created=counts.created,
                updated=counts.updated,
                unchanged=counts.unchanged,
                deactivated=counts.deactivated,
                failed=counts.failed,
                warnings=counts.warnings,
                message=message,
            )
        )

    def interrupt_others(self, source_id: str, run_id: int, now: dt.datetime) -> list[int]:
        """Mark the source's runs still ``running``, other than ``run_id``, as failed.

        Called by whoever has just claimed the source: a run that still says ``running`` then
        belongs to a process that died (or lost its lease) before it could record its outcome;
        its one transaction either committed or did not.
        """
        stale = [
            int(i)
            for i in self._conn.execute(
                select(import_runs.c.id).where(
                    import_runs.c.source_id == source_id,
                    import_runs.c.status == RunStatus.RUNNING.value,
                    import_runs.c.id != run_id,
                )
            ).scalars()
        ]
        self.interrupt(stale, now)
        return stale

    def interrupt(self, run_ids: Sequence[int], now: dt.datetime) -> None:
        """Mark these runs failed as interrupted, those of them still ``running``."""
        if run_ids:
            self._conn.execute(
                update(import_runs)
                .where(
                    import_runs.c.id.in_(list(run_ids)),
                    import_runs.c.status == RunStatus.RUNNING.value,
                )
                .values(status=RunStatus.FAILED.value, finished_at=now, message=INTERRUPTED)
            )

    def add_errors(self, run_id: int, errors: Sequence[RecordError]) -> None:
        if errors:
            self._conn.execute(
                insert(import_run_errors),
                [
                    {
                        "run_id": run_id,
                        "record_number": e.number,
                        "external_id": (e.external_id or None) and e.external_id[:128],
                        "reason": e.reason,
                        "field": e.field and e.field[:64],
                        "severity": e.severity.value,
                    }
                    for e in errors
                ],
            )

    def get(self, run_id: int) -> RunRow | None:
        row = self._conn.execute(select(import_runs).where(import_runs.c.id == run_id)).first()
        return None if row is None else run_row(row)

    def recent(self, source_id: str, *, limit: int = 50, offset: int = 0) -> list[RunRow]:
        rows = self._conn.execute(
            select(import_runs)
            .where(import_runs.c.source_id == source_id)
            .order_by(import_runs.c.id.desc())
            .limit(limit)
            .offset(offset)
        )
        return [run_row(r) for r in rows]

    def errors(
        self, run_id: int, *, limit: int | None = None, offset: int = 0
    ) -> list[RecordError]:
        """The run's record errors and warnings by record number; ``limit`` None: all of them."""
        stmt = (
            select(import_run_errors)
            .where(import_run_errors.c.run_id == run_id)
            .order_by(import_run_errors.c.record_number, import_run_errors.c.id)
            .offset(offset)
        )
        if limit is not None:
            stmt = stmt.limit(limit)
        return [
            RecordError(r.record_number, r.reason, r.external_id, r.field, Severity(r.severity))
            for r in self._conn.execute(stmt)
        ]

    def count_errors(self, run_id: int) -> int:
        stmt = select(func.count()).where(import_run_errors.c.run_id == run_id)
        return int(self._conn.execute(stmt).scalar_one())


class SourceStateRepository:
    """The per-source row that holds the run lock and the schedule's last due time."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def ensure(self, source_id: str) -> None:
        """Create the source's row unless it exists (safe when processes race to create it)."""
        dialect = postgresql if self._conn.dialect.name == "postgresql" else sqlite
        self._conn.execute(
            dialect.insert(import_source_state)
            .values(source_id=source_id)
            .on_conflict_do_nothing(index_elements=["source_id"])
        )

    def claim(
        self,
        source_id: str,
        run_id: int,
        now: dt.datetime,
        lease_until: dt.datetime,
        due_at: dt.datetime | None = None,
    ) -> bool:
        """Take the source for ``run_id``: true only when no other run holds a live lease.

        With ``due_at``, also claim that due time of the schedule: true only when no one has
        claimed it or a later one, so each due time starts at most one run.
        """
        conds = [
            import_source_state.c.source_id == source_id,
            or_(
                import_source_state.c.running_run_id.is_(None),
                import_source_state.c.lease_until < now,
            ),
        ]
        values: dict[str, Any] = {"running_run_id": run_id, "lease_until": lease_until}
        if due_at is not None:
            conds.append(
                or_(
                    import_source_state.c.last_due_at.is_(None),
                    import_source_state.c.last_due_at < due_at,
                )
            )
            values["last_due_at"] = due_at
        result = self._conn.execute(update(import_source_state).where(and_(*conds)).values(values))
        return result.rowcount == 1

    def renew(self, source_id: str, run_id: int, lease_until: dt.datetime) -> bool:
        """Extend ``run_id``'s hold on the source; false when the run no longer holds it."""
        result = self._conn.execute(
            update(import_source_state)
            .where(
                import_source_state.c.source_id == source_id,
                import_source_state.c.running_run_id == run_id,
            )
            .values(lease_until=lease_until)
        )
        return result.rowcount == 1

    def expired(self, now: dt.datetime) -> list[tuple[str, int]]:
        """(source id, run id) of every hold whose lease ran out: its process died."""
        rows = self._conn.execute(
            select(import_source_state.c.source_id, import_source_state.c.running_run_id).where(
                import_source_state.c.running_run_id.is_not(None),
                import_source_state.c.lease_until < now,
            )
        )
        return [(str(r.source_id), int(r.running_run_id)) for r in rows]

    def release_expired(self, source_id: str, run_id: int, now: dt.datetime) -> bool:
        """Free the source of ``run_id`` if its lease is still expired; true when freed."""
        result = self._conn.execute(
            update(import_source_state)
            .where(
                import_source_state.c.source_id == source_id,
                import_source_state.c.running_run_id == run_id,
                import_source_state.c.lease_until < now,
            )
            .values(running_run_id=None, lease_until=None)
        )
        return result.rowcount == 1

    def release(self, source_id: str, run_id: int) -> None:
        self._conn.execute(
            update(import_source_state)
            .where(
                import_source_state.c.source_id == source_id,
                import_source_state.c.running_run_id == run_id,
            )
            .values(running_run_id=None, lease_until=None)
        )

    def last_due(self, source_id: str) -> dt.datetime | None:
        value: dt.datetime | None = self._conn.execute(
            select(import_source_state.c.last_due_at).where(
                import_source_state.c.source_id == source_id
            )
        ).scalar_one_or_none()
        return value

    def running_run(self, source_id: str, now: dt.datetime) -> int | None:
        row = self._conn.execute(
            select(import_source_state.c.running_run_id, import_source_state.c.lease_until).where(
                import_source_state.c.source_id == source_id
            )
        ).first()
        if row is None or row.running_run_id is None or row.lease_until < now:
            return None
        return int(row.running_run_id)


@dataclass(frozen=True, slots=True)
class ScheduledSource:
    id: str
    agency_id: str
    schedule: str
    created_at: dt.datetime


def scheduled_sources(conn: Connection) -> list[ScheduledSource]:
    """Every import source that has a schedule."""
    rows = conn.execute(select(import_sources).order_by(import_sources.c.id))
    return [
        ScheduledSource(r.id, r.agency_id, r.settings["schedule"], r.created_at)
        for r in rows
        if (r.settings or {}).get("schedule")
    ]
