"""Patron import runs: claim the source, read the feed, synchronise, record the outcome.

A run has two phases. ``start_run`` claims the source (one run per source at a time) and records
the run as ``running``; ``execute_run`` keeps the claim renewed while it works (``_Hold``), opens
the source, synchronises inside one transaction, then records the outcome and releases the source
in a second one. A source that is down, refuses us, times out or sends a malformed or truncated
body ends the run as ``source_unavailable`` or ``failed`` with the reason, and because the
synchronisation's transaction is rolled back, with no patron changed. Records that fail
validation are kept with their position and reason and do not stop the run. A large feed is read
in a second process (``sources/reader_process.py``), and while a run works the garbage collector
leaves the process's older objects alone (``services/collector.py``).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

from patronlink.config.schema import ImportSourceConfig
from patronlink.domain.audit import SYSTEM, Actor, AuditAction, ObjectKind
from patronlink.domain.errors import (
    ConfigError,
    ImportInProgress,
    NotFound,
    SourceFormatError,
    SourceUnavailable,
)
from patronlink.domain.import_records import RecordError
from patronlink.domain.import_runs import (
    IMPORT_LEASE,
    DeactivationRules,
    RunCounts,
    RunStatus,
    Trigger,
    final_status,
)
from patronlink.services import audit
from patronlink.services.clock import Clock
from patronlink.services.collector import spare_collector
from patronlink.services.import_sync import Change, RemoteCheck, Synchroniser
from patronlink.services.secrets import resolve
from patronlink.sources.base import FeedReader, ReaderOptions
from patronlink.sources.folio_json import present_only
from patronlink.sources.reader_process import ReaderProcess
from patronlink.sources.registry import build_source, open_reader
from patronlink.storage.database import Database

# How long a run holds its source without renewing the hold. A live run renews it every quarter
# of this (``_Hold``), so a run may last as long as it needs; a process that died mid-run blocks
# its source for at most this long, and the next claim (or the worker's sweep) marks its run
# failed. This is the functions' default; the CLI, the web and the worker pass
# ``Settings.import_lease_seconds`` (``PATRONLINK_IMPORT_LEASE_SECONDS``) instead.
LEASE = IMPORT_LEASE
# A feed at least this large is read in a second process (``sources/reader_process.py``), beside
# the database work; a smaller one in-process, where starting that process would cost more than
# it saves: starting it takes about 0.1 s, as long as reading some 2,000 users here, and 2 MiB is
# about 4,500 users of the test feeds (``tests/support/feeds.py``).
READER_PROCESS_FROM = 2 * 1024 * 1024

log = structlog.get_logger("patronlink.import")

Progress = Callable[[RunCounts], None]


@dataclass
class RunReport:
    source_id: str
    status: RunStatus
    counts: RunCounts
    run_id: int | None = None  # None for a dry run, which records nothing
    message: str | None = None
    errors: list[RecordError] = field(default_factory=list)
    changes: list[Change] = field(default_factory=list)
    dry_run: bool = False


class RunObserver:
    """Called once per finished run (metrics); the default does nothing."""

    def finished(self, report: RunReport) -> None:
        """Count or log a finished run."""


@dataclass(frozen=True)
class _Source:
    id: str
    agency_id: str
    country_code: str
    settings: dict[str, Any]


def _source(db: Database, source_id: str) -> _Source:
    with db.transaction() as repos:
        found = repos.import_sources.get(source_id)
        if found is None:
            raise NotFound(f"import source {source_id!r} does not exist")
        agency_id, settings = found
        agency = repos.agencies.get(agency_id)
        if agency is None:
            raise NotFound(f"agency {agency_id!r} of import source {source_id!r} does not exist")
    return _Source(source_id, agency_id, agency.country_code, settings)


def source_agency(db: Database, source_id: str) -> str:
    """The agency an import source belongs to (``NotFound`` when there is no such source)."""
    with db.transaction() as repos:
        found = repos.import_sources.get(source_id)
    if found is None:
        raise NotFound(f"import source {source_id!r} does not exist")
    return found[0]


class _NotClaimed(Exception):
    pass


class LostHold(Exception):
    """The run's hold on its source expired before it could commit (its changes are rolled back)."""


@dataclass(frozen=True)
class _Claim:
    """The run a synchronisation belongs to, for the hold check just before its commit."""

    source_id: str
    run_id: int
    lease: dt.timedelta


class _Hold:
    """Renews a run's hold on its source every quarter of the lease, in a thread, until closed.

    A renewal that fails is tried again at the next tick (on SQLite a renewal waits for the
    run's own transaction, which holds the process's writer lock, to end); the hold is renewed
    once more inside the run's transaction just before it commits, so a run never commits
    without holding it.
    """

    def __init__(self, db: Database, claim: _Claim, clock: Clock) -> None:
        self._db = db
        self._claim = claim
        self._clock = clock
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._loop, name=f"import-hold-{claim.run_id}", daemon=True
        )

    def __enter__(self) -> _Hold:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        interval = self._claim.lease.total_seconds() / 4
        while not self._stop.wait(interval):
            try:
                with self._db.transaction() as repos:
                    held = repos.source_state.renew(
                        self._claim.source_id,
                        self._claim.run_id,
                        self._clock() + self._claim.lease,
                    )
            except Exception as exc:  # noqa: BLE001 - a renewal is retried at the next tick
                log.debug("import hold not renewed", run_id=self._claim.run_id, error=str(exc))
                continue
            if not held:
                log.warning("import run lost its hold on the source", run_id=self._claim.run_id)
                return


def start_run(
    db: Database,
    source_id: str,
    trigger: Trigger,
    clock: Clock,
    *,
    due_at: dt.datetime | None = None,
    lease: dt.timedelta = LEASE,
    actor: Actor = SYSTEM,
) -> int | None:
    """Record a run of the source as ``running`` and hold the source for it; returns its id.

    The start is audited (``import.run``) in the same transaction that records the run.

    Raises ``ImportInProgress`` when another run holds the source. With ``due_at`` (the scheduler)
    it returns None instead, and also when that due time was claimed already by another process.
    A run of the source left ``running`` by a process that died is marked failed here.
    """
    source = _source(db, source_id)
    now = clock()
    try:
        with db.transaction() as repos:
            state = repos.source_state
            state.ensure(source_id)
            run_id = repos.import_runs.add(source_id, source.agency_id, trigger, now, due_at)
            if not state.claim(source_id, run_id, now, now + lease, due_at):
                raise _NotClaimed
            interrupted = repos.import_runs.interrupt_others(source_id, run_id, now)
            audit.record(
                repos,
                actor,
                AuditAction.IMPORT_RUN,
                ObjectKind.IMPORT_SOURCE,
                source_id,
                agency_id=source.agency_id,
                at=now,
                run_id=run_id,
                trigger=trigger.value,
            )
    except _NotClaimed:
        if due_at is not None:
            return None
        raise ImportInProgress(f"a run of import source {source_id!r} is in progress") from None
    for stale in interrupted:
        log.warning("import run interrupted: its process stopped", run_id=stale, source=source_id)
    return run_id


def sweep_interrupted(db: Database, clock: Clock) -> list[int]:
    """Free every source held by a run whose lease expired, and mark that run failed.

    The worker's scheduler calls this each round, so a run whose process was killed shows as
    failed within a lease and a scheduler interval, without waiting for the next run to start.
    """
    now = clock()
    swept: list[int] = []
    with db.transaction() as repos:
        state = repos.source_state
        for source_id, run_id in state.expired(now):
            if state.release_expired(source_id, run_id, now):
                swept.append(run_id)
        repos.import_runs.interrupt(swept, now)
    for run_id in swept:
        log.warning("import run interrupted: its process stopped", run_id=run_id)
    return swept


def _resolved_auth(config: ImportSourceConfig, environ: Mapping[str, str]) -> dict[str, str]:
    """The source's auth with its ``${VAR}`` references resolved (unset fields left out)."""
    auth = config.auth.model_dump(exclude_none=True)
    return {k: resolve(v, environ) if isinstance(v, str) else str(v) for k, v in auth.items()}


def _source_config(source: _Source) -> ImportSourceConfig:
    """The source's stored settings typed as ``config apply`` checked them (defaults there)."""
    return ImportSourceConfig.model_validate(
        {"id": source.id, "agency": source.agency_id, **source.settings}
    )


def _options(config: ImportSourceConfig, prefix: bytes) -> ReaderOptions:
    """The reader's options from the source's settings and from FOLIO's
    ``updateOnlyPresentFields`` as the first bytes of the feed set it."""
    mapping = config.mapping
    return ReaderOptions(
        date_format=config.date_format,
        patron_id=mapping.patron_id,
        external_id=mapping.external_id,
        sms_number=mapping.sms_number,
        update_only_present=config.format == "folio-json" and present_only(prefix),
    )


def _synchronise(
    db: Database,
    source: _Source,
    *,
    clock: Clock,
    environ: Mapping[str, str],
    dry_run: bool,
    file: Path | None,
    progress: Progress | None,
    claim: _Claim | None,
    reader_process_from: int,
) -> RunReport:
    config = _source_config(source)
    configured = config.deactivate_missing
    feed = build_source(
        config.url,
        _resolved_auth(config, environ),
        connect_timeout=config.connect_timeout,
        read_timeout=config.read_timeout,
        file=file,
    )
    with feed.open() as stream, contextlib.ExitStack() as stack:
        # The first bytes decide where the feed is read (a source that fails already here
        # fails the run before its transaction begins).
        prefix = stream.read(reader_process_from)
        # A smaller feed is all in ``prefix``; a larger one may set FOLIO's
        # ``updateOnlyPresentFields`` after its users (``Synchroniser.resolve_present_only``).
        options = _options(config, prefix)
        reader: FeedReader | ReaderProcess
        remote: RemoteCheck | None = None
        if len(prefix) < reader_process_from:
            body = io.BytesIO(prefix)
            reader = open_reader(config.format, body, read_flag=configured is None, options=options)
        else:
            reader = stack.enter_context(
                ReaderProcess(
                    config.format,
                    stream,
                    prefix,
                    read_flag=configured is None,
                    options=options,
                    agency_id=source.agency_id,
                    country_code=source.country_code,
                    source_id=source.id,
                )
            )
            remote = reader.check
        del prefix
        # The run's one transaction spans the whole feed (``Database.long_transaction``): on
        # SQLite it holds this process's writer lock as every transaction does, so the process's
        # other transactions queue behind it; a dry run, an error or a lost hold rolls it back.
        with db.long_transaction(keep=not dry_run) as repos:
            sync = Synchroniser(
                repos.imports,
                agency_id=source.agency_id,
                country_code=source.country_code,
                source_id=source.id,
                now=clock(),
                collect_changes=dry_run,
                progress=progress,
                remote=remote,
                patron_id_prefix=config.patron_id_prefix,
                # Known at once when the first bytes say so or hold the whole feed.
                present_only=True if options.update_only_present else (None if remote else False),
            )
            try:
                for item in reader.entries():
                    sync.add(item)
                sync.resolve_present_only(reader.present_only)
                enabled = configured if configured is not None else reader.deactivate_missing
                sync.finish(
                    DeactivationRules(
                        enabled=True if enabled is None else bool(enabled),
                        max_fraction=config.max_deactivate_fraction,
                        after_missing_runs=config.deactivate_after_missing_runs,
                    )
                )
                sync.close()
            except BaseException:
                # The store may still be writing in the background: wait for it (its own error
                # would only hide this one) before the rollback uses the connection.
                with contextlib.suppress(Exception):
                    sync.close()
                raise
            if (
                not dry_run
                and claim is not None
                and not repos.source_state.renew(
                    claim.source_id, claim.run_id, clock() + claim.lease
                )
            ):
                raise LostHold(
                    "the run lost its hold on the source (its lease expired while it ran, and "
                    "another run or the worker's sweep took the source over); "
                    "no patron was changed"
                )
    notes = [*reader.notes, *([sync.note] if sync.note else [])]
    if sync.counts.records == 0:
        notes.append("the feed has no records")
    return RunReport(
        source_id=source.id,
        status=final_status(sync.counts, stopped=sync.stopped),
        counts=sync.counts,
        message="; ".join(notes) or None,
        errors=sync.errors,
        changes=sync.changes,
        dry_run=dry_run,
    )


def _attempt(
    db: Database,
    source: _Source,
    *,
    clock: Clock,
    environ: Mapping[str, str],
    dry_run: bool,
    file: Path | None,
    progress: Progress | None,
    claim: _Claim | None = None,
    reader_process_from: int,
) -> RunReport:
    """Synchronise, turning every way a source can fail into a report with no patron changed."""

    def failed(status: RunStatus, reason: str) -> RunReport:
        return RunReport(source.id, status, RunCounts(), message=reason, dry_run=dry_run)

    try:
        with spare_collector():
            return _synchronise(
                db,
                source,
                clock=clock,
                environ=environ,
                dry_run=dry_run,
                file=file,
                progress=progress,
                claim=claim,
                reader_process_from=reader_process_from,
            )
    except SourceUnavailable as exc:
        return failed(RunStatus.SOURCE_UNAVAILABLE, str(exc))
    except (SourceFormatError, ConfigError, LostHold) as exc:
        return failed(RunStatus.FAILED, str(exc))
    except Exception as exc:
        log.exception("import run crashed", source=source.id)
        return failed(RunStatus.FAILED, f"unexpected error: {type(exc).__name__}: {exc}")


def run_now(
    db: Database,
    source_id: str,
    *,
    clock: Clock,
    environ: Mapping[str, str],
    lease: dt.timedelta,
    actor: Actor,
    observer: RunObserver | None = None,
    wait: bool = False,
) -> int:
    """Staff's "run now": start a run of the source and execute it in a background thread;
    returns the run's id at once (``ImportInProgress`` when another run holds the source).

    With ``wait`` the run is executed in the calling thread and has ended on return.
    """
    run_id = start_run(db, source_id, Trigger.STAFF, clock, lease=lease, actor=actor)
    assert run_id is not None  # without a due time, start_run raises when the source is busy

    def work() -> None:
        execute_run(db, run_id, clock=clock, environ=environ, observer=observer, lease=lease)

    if wait:
        work()
    else:
        threading.Thread(target=work, name=f"import-{source_id}-{run_id}", daemon=True).start()
    return run_id


def execute_run(
    db: Database,
    run_id: int,
    *,
    clock: Clock,
    environ: Mapping[str, str],
    file: Path | None = None,
    progress: Progress | None = None,
    observer: RunObserver | None = None,
    lease: dt.timedelta = LEASE,
    reader_process_from: int = READER_PROCESS_FROM,
    actor: Actor = SYSTEM,
) -> RunReport:
    """Run a started run to its end, record the outcome and release the source.

    ``lease`` must be the one the run was started with: the hold is renewed by that much.
    A feed of ``reader_process_from`` bytes or more is read in a second process.
    """
    with db.transaction() as repos:
        row = repos.import_runs.get(run_id)
    if row is None:
        raise NotFound(f"import run {run_id} does not exist")
    claim = _Claim(row.source_id, run_id, lease)
    try:
        with _Hold(db, claim, clock):
            report = _attempt(
                db,
                _source(db, row.source_id),
                clock=clock,
                environ=environ,
                dry_run=False,
                file=file,
                progress=progress,
                claim=claim,
                reader_process_from=reader_process_from,
            )
    except NotFound as exc:  # the source was removed after the run started
        report = RunReport(row.source_id, RunStatus.FAILED, RunCounts(), message=str(exc))
    report.run_id = run_id
    with db.transaction() as repos:
        runs = repos.import_runs
        runs.finish(run_id, report.status, report.counts, report.message, clock())
        runs.add_errors(run_id, report.errors)
        repos.source_state.release(row.source_id, run_id)
    # A run that set something aside (a record's warning, a safety stop) is a warning too.
    event = log.info if report.status is RunStatus.SUCCEEDED else log.warning
    event(
        "import run finished",
        run_id=run_id,
        source=row.source_id,
        trigger=row.trigger.value,
        status=report.status.value,
        reason=report.message,
        records=report.counts.records,
        created=report.counts.created,
        updated=report.counts.updated,
        unchanged=report.counts.unchanged,
        deactivated=report.counts.deactivated,
        failed=report.counts.failed,
        warnings=report.counts.warnings,
    )
    if observer is not None:
        observer.finished(report)
    return report


def run_import(
    db: Database,
    source_id: str,
    *,
    trigger: Trigger,
    clock: Clock,
    environ: Mapping[str, str],
    dry_run: bool = False,
    file: Path | None = None,
    progress: Progress | None = None,
    observer: RunObserver | None = None,
    lease: dt.timedelta = LEASE,
    reader_process_from: int = READER_PROCESS_FROM,
    actor: Actor = SYSTEM,
) -> RunReport:
    """Run an import now. A dry run records nothing, holds no lock and changes no patron."""
    if dry_run:
        return _attempt(
            db,
            _source(db, source_id),
            clock=clock,
            environ=environ,
            dry_run=True,
            file=file,
            progress=progress,
            reader_process_from=reader_process_from,
        )
    run_id = start_run(db, source_id, trigger, clock, lease=lease, actor=actor)
    assert run_id is not None  # without a due time, start_run raises rather than return None
    return execute_run(
        db,
        run_id,
        clock=clock,
        environ=environ,
        file=file,
        progress=progress,
        observer=observer,
        lease=lease,
        reader_process_from=reader_process_from,
    )
