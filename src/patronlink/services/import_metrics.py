"""Prometheus metrics of import runs, in a registry the caller owns (one per app or worker)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter

from patronlink.services.import_patrons import RunObserver, RunReport


class ImportMetrics(RunObserver):
    """Counts finished runs by source and status, and records by outcome."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.runs = Counter(
            "patronlink_import_runs",
            "Finished patron-import runs by source and status",
            ["source", "status"],
            registry=registry,
        )
        self.records = Counter(
            "patronlink_import_records",
            "Records of finished patron-import runs by source and outcome",
            ["source", "outcome"],
            registry=registry,
        )

    def finished(self, report: RunReport) -> None:
        self.runs.labels(report.source_id, report.status.value).inc()
        counts = report.counts
        for outcome, value in (
            ("created", counts.created),
            ("updated", counts.updated),
            ("unchanged", counts.unchanged),
            ("deactivated", counts.deactivated),
            ("failed", counts.failed),
            ("warnings", counts.warnings),
        ):
            if value:
                self.records.labels(report.source_id, outcome).inc(value)
