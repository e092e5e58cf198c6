"""Dispatch metrics: texts sent, failed and retried, send latency, and the queue depth."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from patronlink.domain.outbox import AttemptOutcome, MessageStatus
from patronlink.storage.database import Database
from patronlink.storage.outbox import Outcome


class DispatchMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.sent = Counter(
            "patronlink_sms_sent", "Texts accepted by a gateway", ["driver"], registry=registry
        )
        self.failed = Counter(
            "patronlink_sms_failed",
            "Texts put on the error queue (permanent failure or last attempt)",
            ["driver"],
            registry=registry,
        )
        self.retried = Counter(
            "patronlink_sms_retried",
            "Temporary failures that will be tried again",
            ["driver"],
            registry=registry,
        )
        self.latency = Histogram(
            "patronlink_sms_send_seconds",
            "Time for a gateway to answer one text",
            ["driver"],
            registry=registry,
        )

    def observe(self, outcome: Outcome, seconds: float) -> None:
        self.latency.labels(outcome.driver).observe(seconds)
        if outcome.status is MessageStatus.SENT:
            self.sent.labels(outcome.driver).inc()
        elif outcome.status is MessageStatus.ERROR:
            self.failed.labels(outcome.driver).inc()
        elif outcome.attempt_outcome == AttemptOutcome.TEMPORARY.value:
            self.retried.labels(outcome.driver).inc()


class QueueDepthCollector(Collector):
    """Reads the outbox at scrape time, so every process reports the same truth."""

    def __init__(self, db: Database, clock: Callable[[], dt.datetime]) -> None:
        self.db = db
        self.clock = clock

    def collect(self) -> Iterator[GaugeMetricFamily]:
        by_status = GaugeMetricFamily(
            "patronlink_sms_messages", "Texts in the outbox by status", labels=["status"]
        )
        due = GaugeMetricFamily("patronlink_sms_queue_due", "Queued texts that are due now")
        try:
            with self.db.transaction() as repos:
                counts = repos.outbox.counts_by_status()
                due_now = repos.outbox.due_count(self.clock())
        except Exception:  # noqa: BLE001 - a scrape must not fail because the database is away
            return
        for status in MessageStatus:
            by_status.add_metric([status.value], counts.get(status.value, 0))
        due.add_metric([], due_now)
        yield by_status
        yield due


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
