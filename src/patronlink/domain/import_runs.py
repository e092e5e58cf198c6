"""Import runs: statuses, triggers, counts, and the rule that decides when missing patrons go.

The deactivation rule is the safety net of the whole feature: an institution's system may one day
send a truncated or half-empty list, and patronlink must not turn that into hundreds of inactive
patrons. ``plan_deactivation`` is a pure function of what the run saw, so every branch of the rule
is tested without a database.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Generic, TypeVar

K = TypeVar("K")

# How long a run holds its source without renewing the hold, unless configured otherwise
# (``Settings.import_lease_seconds``, ``PATRONLINK_IMPORT_LEASE_SECONDS``).
IMPORT_LEASE = dt.timedelta(seconds=120)


class RunStatus(StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    SUCCEEDED_WITH_ERRORS = "succeeded_with_errors"
    # The whole feed was read and no record failed, but something was set aside: a record's
    # warning, or a safety rule that kept the missing patrons from being deactivated.
    SUCCEEDED_WITH_WARNINGS = "succeeded_with_warnings"
    FAILED = "failed"
    SOURCE_UNAVAILABLE = "source_unavailable"

    @property
    def finished(self) -> bool:
        return self is not RunStatus.RUNNING


class Trigger(StrEnum):
    SCHEDULE = "schedule"
    STAFF = "staff"
    CLI = "cli"


@dataclass(slots=True)
class RunCounts:
    records: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    deactivated: int = 0
    failed: int = 0
    warnings: int = 0  # records written with a warning


def final_status(counts: RunCounts, *, stopped: bool = False) -> RunStatus:
    """The status of a run that read its whole feed; ``stopped``: a safety rule kept missing
    patrons from being deactivated."""
    if counts.failed:
        return RunStatus.SUCCEEDED_WITH_ERRORS
    if counts.warnings or stopped:
        return RunStatus.SUCCEEDED_WITH_WARNINGS
    return RunStatus.SUCCEEDED


@dataclass(frozen=True, slots=True)
class DeactivationRules:
    """A source's rules; see docs/import.md ("Safety rules")."""

    enabled: bool = True
    max_fraction: float = 0.1
    after_missing_runs: int = 1


@dataclass(frozen=True, slots=True)
class DeactivationPlan(Generic[K]):
    """What to do with the patrons a feed did not mention.

    ``counting`` maps each missing patron to its new count of consecutive runs without it (all of
    them, deactivated or not); ``deactivate`` are those that reached the source's threshold.
    ``skipped`` says why nothing is done when the run is not safe; then both are empty.
    ``stopped`` is true when a safety rule (not the source's own switch) decided so.
    """

    counting: Mapping[K, int] = field(default_factory=dict)
    deactivate: tuple[K, ...] = ()
    skipped: str | None = None
    stopped: bool = False


def plan_deactivation(
    rules: DeactivationRules,
    *,
    records: int,
    failed: int,
    population: int,
    missing: Mapping[K, int],
) -> DeactivationPlan[K]:
    """Decide which patrons missing from a complete feed to count and which to deactivate.

    ``records`` is the number of entries in the feed, ``failed`` how many of them were rejected,
    ``population`` the source's patrons that are not inactive before the run, and ``missing`` those
    of them the feed did not mention, each with its count of consecutive runs without it so far.
    Nothing is counted or deactivated when deactivation is off, a record failed (it may be one of
    the missing), the feed is empty, or more than ``max_fraction`` of the population is missing.
    """
    if not missing:
        return DeactivationPlan()
    if not rules.enabled:
        return DeactivationPlan(skipped="deactivation of missing patrons is off for this source")
    if failed:
        return DeactivationPlan(
            skipped=f"{failed} record(s) failed, so {len(missing)} missing patron(s) were kept",
            stopped=True,
        )
    if records == 0:
        return DeactivationPlan(
            skipped=f"the feed is empty, so {len(missing)} missing patron(s) were kept",
            stopped=True,
        )
    share = len(missing) / population if population else 1.0
    if share > rules.max_fraction:
        return DeactivationPlan(
            skipped=f"{len(missing)} of {population} patrons ({share:.0%}) are missing from the "
            f"feed, more than the limit of {rules.max_fraction:.0%}: none were deactivated",
            stopped=True,
        )
    counting = {key: runs + 1 for key, runs in missing.items()}
    deactivate = tuple(key for key, runs in counting.items() if runs >= rules.after_missing_runs)
    return DeactivationPlan(counting=counting, deactivate=deactivate)
