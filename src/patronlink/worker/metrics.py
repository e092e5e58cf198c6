"""Dispatch metrics: texts sent, failed and retried, send latency, and the queue depth."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from patronlink.domain.outbox import AttemptOutcome, MessageStatus
from patronlink.storage.database import Database, Outcome
from patronlink.worker.health import Health


class DispatchMetrics:
    """Counters of this process's sends, by agency and gateway driver."""

    def __init__(self, registry: CollectorRegistry) -> None:
        labels = ["agency", "driver"]
        self.sent = Counter(
            "patronlink_sms_sent", "Texts accepted by a gateway", labels, registry=registry
        )
        self.failed = Counter(
            "patronlink_sms_failed",
            "Texts put on the error queue (permanent failure or last attempt)",
            labels,
            registry=registry,
        )
        self.retried = Counter(
            "patronlink_sms_retried",
            "Temporary failures that will be tried again",
            labels,
            registry=registry,
        )
        self.latency = Histogram(
            "patronlink_sms_send_seconds",
            "Time for a gateway to answer one text",
            ["driver"],
            registry=registry,
        )
        self.gateway_failures = Gauge(
            "patronlink_sms_gateway_consecutive_failures",
            "Temporary failures in a row of an agency's gateway, as this process saw them "
            "(0 once it answers again); per process: take the max over processes",
            labels,
            registry=registry,
        )

    def observe(self, agency_id: str, outcome: Outcome, seconds: float) -> None:
        self.latency.labels(outcome.driver).observe(seconds)
        if outcome.status is MessageStatus.SENT:
            self.sent.labels(agency_id, outcome.driver).inc()
        elif outcome.status is MessageStatus.ERROR:
            self.failed.labels(agency_id, outcome.driver).inc()
        elif outcome.attempt_outcome == AttemptOutcome.TEMPORARY.value:
            self.retried.labels(agency_id, outcome.driver).inc()

    def gateway_streak(self, agency_id: str, driver: str, failures: int) -> None:
        self.gateway_failures.labels(agency_id, driver).set(failures)


class QueueDepthCollector(Collector):
    """The outbox as the database sees it, read at scrape time.

    These gauges are database-wide: every process that reports them reports the same values, so
    aggregate them over processes with ``max``, never ``sum`` (their help texts say so). When the
    query fails the last values are reported again, marked by ``patronlink_sms_queue_stale 1``
    and their age, so that alerts keep their data through a database outage. The age of the
    oldest due text is worked out from the clock at each scrape: it grows during an outage too.
    """

    def __init__(self, db: Database, clock: Callable[[], dt.datetime]) -> None:
        self.db = db
        self.clock = clock
        self._last: _QueueSnapshot | None = None

    def collect(self) -> Iterator[GaugeMetricFamily]:
        now = self.clock()
        stale = 0
        try:
            with self.db.transaction() as repos:
                counts = repos.outbox.counts_by_status()
                due_now = repos.outbox.due_by_agency(now)
            self._last = _QueueSnapshot(now, counts, due_now)
        except Exception:  # noqa: BLE001 - a scrape must not fail because the database is away
            stale = 1
        yield GaugeMetricFamily(
            "patronlink_sms_queue_stale",
            "1 when the outbox gauges below are the last values read, because reading the "
            "database failed at this scrape",
            value=stale,
        )
        last = self._last
        if last is None:
            return
        yield GaugeMetricFamily(
            "patronlink_sms_queue_read_age_seconds",
            "Seconds since the outbox gauges were read from the database",
            value=max(0.0, (now - last.read_at).total_seconds()),
        )
        by_status = GaugeMetricFamily(
            "patronlink_sms_messages",
            f"Texts in the outbox by status. {_DATABASE_WIDE}",
            labels=["status"],
        )
        for status in MessageStatus:
            by_status.add_metric([status.value], last.counts.get(status.value, 0))
        yield by_status
        yield GaugeMetricFamily(
            "patronlink_sms_queue_due",
            f"Queued texts that are due now. {_DATABASE_WIDE}",
            value=sum(n for n, _ in last.due.values()),
        )
        due = GaugeMetricFamily(
            "patronlink_sms_agency_due",
            f"Queued texts that are due now, by agency. {_DATABASE_WIDE}",
            labels=["agency"],
        )
        oldest = GaugeMetricFamily(
            "patronlink_sms_agency_oldest_due_seconds",
            "How long the oldest due text of each agency has waited past its due time, in "
            f"seconds. {_DATABASE_WIDE}",
            labels=["agency"],
        )
        for agency_id, (count, since) in sorted(last.due.items()):
            due.add_metric([agency_id], count)
            oldest.add_metric([agency_id], max(0.0, (now - since).total_seconds()))
        yield due
        yield oldest


_DATABASE_WIDE = "Database-wide, the same in every process: aggregate with max, not sum."


@dataclass(frozen=True)
class _QueueSnapshot:
    read_at: dt.datetime
    counts: dict[str, int]
    due: dict[str, tuple[int, dt.datetime]]


class LoopHealthCollector(Collector):
    """The worker's loops as gauges, per process: whether each is well (1) or failing or stopped
    (0), and the seconds since it last went round. What ``/readyz`` says, for alerts."""

    def __init__(self, health: Health) -> None:
        self.health = health

    def collect(self) -> Iterator[GaugeMetricFamily]:
        ok = GaugeMetricFamily(
            "patronlink_worker_loop_ok",
            "1 when the worker loop is alive and not failing, else 0 (per process)",
            labels=["loop"],
        )
        idle = GaugeMetricFamily(
            "patronlink_worker_loop_idle_seconds",
            "Seconds since the worker loop last went round successfully (per process)",
            labels=["loop"],
        )
        for name, loop in sorted(self.health.loops.items()):  # copied at once, see Health
            ok.add_metric([name], 0 if loop.problem() is not None else 1)
            idle.add_metric([name], max(0.0, loop.monotonic() - loop.last_progress))
        yield ok
        yield idle


class DeliveryCollector(Collector):
    """The share of each agency's sent texts that reports say were delivered, at scrape time.

    The share counts texts with a final report only (delivered or failed): texts still waiting
    for a report, or sent without one, say nothing about delivery.
    """

    def __init__(self, db: Database) -> None:
        self.db = db

    def collect(self) -> Iterator[GaugeMetricFamily]:
        share = GaugeMetricFamily(
            "patronlink_sms_delivered_share",
            "Delivered / (delivered + failed) of each agency's sent texts",
            labels=["agency"],
        )
        by_state = GaugeMetricFamily(
            "patronlink_sms_delivery",
            "Sent texts by agency and delivery state",
            labels=["agency", "delivery"],
        )
        try:
            with self.db.transaction() as repos:
                counts = repos.outbox.delivery_counts()
        except Exception:  # noqa: BLE001 - a scrape must not fail because the database is away
            return
        for (agency, state), n in sorted(counts.items()):
            by_state.add_metric([agency, state], n)
        for agency in sorted({a for a, _ in counts}):
            delivered = counts.get((agency, "delivered"), 0)
            final = delivered + counts.get((agency, "failed"), 0)
            if final:
                share.add_metric([agency], delivered / final)
        yield by_state
        yield share
