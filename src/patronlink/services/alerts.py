"""Alerts on the dashboard, computed from the database (so every process shows the same):

- a gateway failing: at least ``MIN_FAILED_ATTEMPTS`` attempts in the last ``WINDOW`` for an
  agency, and none of them sent. The alert ends with the first success (or when the window has
  no attempts left).
- an import source whose last two runs failed (or found the source unavailable).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from patronlink.domain.import_runs import RunStatus
from patronlink.storage.database import Database

WINDOW = dt.timedelta(minutes=15)
MIN_FAILED_ATTEMPTS = 3
_FAILED_RUNS = {RunStatus.FAILED, RunStatus.SOURCE_UNAVAILABLE}


@dataclass(frozen=True)
class GatewayAlert:
    agency_id: str
    failed_attempts: int
    last_reason: str | None


@dataclass(frozen=True)
class SourceAlert:
    source_id: str
    agency_id: str
    last_message: str | None


@dataclass(frozen=True)
class Alerts:
    gateways: list[GatewayAlert]
    sources: list[SourceAlert]


def current_alerts(db: Database, agency_id: str | None, now: dt.datetime) -> Alerts:
    with db.transaction() as repos:
        tallies = repos.alerts.attempts_since(agency_id, now - WINDOW)
        gateways = [
            GatewayAlert(t.agency_id, t.attempts, t.last_failure)
            for t in tallies
            if t.attempts >= MIN_FAILED_ATTEMPTS and t.successes == 0
        ]
        runs = repos.import_runs
        sources = []
        for source_id, owner, _ in repos.import_sources.list(agency_id):
            last_two = [r for r in runs.recent(source_id, limit=3) if r.status.finished][:2]
            if len(last_two) == 2 and all(r.status in _FAILED_RUNS for r in last_two):
                sources.append(SourceAlert(source_id, owner, last_two[0].message))
    return Alerts(sorted(gateways, key=lambda g: g.agency_id), sources)
