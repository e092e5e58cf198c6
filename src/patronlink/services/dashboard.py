"""The staff dashboard's figures: the queue, the last day's sending, imports and inbound texts."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from patronlink.domain.outbox import MessageStatus
from patronlink.storage.database import Database
from patronlink.storage.import_runs import RunRow
from patronlink.storage.pauses import Pause

DAY = dt.timedelta(hours=24)


@dataclass(frozen=True)
class SourceStatus:
    source_id: str
    agency_id: str
    last_run: RunRow | None


@dataclass(frozen=True)
class Dashboard:
    queued: int
    sent_last_day: int
    failed_last_day: int
    error_queue: int
    inbound_last_day: int
    sources: list[SourceStatus]
    # Paused sending that holds this view's texts: every agency's pause, and the agency's own.
    pauses: tuple[Pause, ...] = ()


def dashboard(db: Database, agency_id: str | None, now: dt.datetime) -> Dashboard:
    """Figures for one agency, or for all when ``agency_id`` is None."""
    since = now - DAY
    with db.transaction() as repos:
        q = repos.overview
        last = q.last_run_per_source(agency_id)
        return Dashboard(
            queued=q.count_messages(agency_id, MessageStatus.QUEUED),
            sent_last_day=q.count_messages(agency_id, MessageStatus.SENT, changed_since=since),
            failed_last_day=q.count_messages(agency_id, MessageStatus.ERROR, changed_since=since),
            error_queue=q.count_messages(agency_id, MessageStatus.ERROR),
            inbound_last_day=q.count_inbound(agency_id, since),
            sources=[
                SourceStatus(source_id, source_agency, last.get(source_id))
                for source_id, source_agency, _ in repos.import_sources.list(agency_id)
            ],
            pauses=tuple(
                p
                for p in repos.pauses.list()
                if p.everywhere or agency_id is None or p.scope == agency_id
            ),
        )
