"""Every label, status, outcome and reason the staff UI shows comes from the one catalogue, in
Danish and English (issue 18, item 7): a value without its key fails here, not on a page."""

from __future__ import annotations

import re
from importlib.resources import files

from patronlink.domain.audit import ActorKind, AuditAction, ObjectKind
from patronlink.domain.delivery import Delivery
from patronlink.domain.import_records import Severity
from patronlink.domain.import_runs import RunStatus, Trigger
from patronlink.domain.outbox import AttemptOutcome, MessageStatus
from patronlink.domain.patron import PatronStatus
from patronlink.domain.patron_lifecycle import LifecycleAction
from patronlink.web.staff.i18n import (
    IMPORT_CHANGES,
    INBOUND_OUTCOMES,
    LANGUAGES,
    TEXTS,
    TOKEN_STATES,
)

# Each prefix a template joins to a value, and the values it can be joined to.
DYNAMIC: dict[str, list[str]] = {
    "status_": [s.value for s in MessageStatus],
    "run_status_": [s.value for s in RunStatus],
    "patron_status_": [s.value for s in PatronStatus],
    "patron_": [a.value for a in LifecycleAction],
    "inbound_outcome_": list(INBOUND_OUTCOMES),
    "attempt_outcome_": [o.value for o in AttemptOutcome],
    "change_": list(IMPORT_CHANGES),
    "trigger_": [t.value for t in Trigger],
    "audit_": [a.value for a in AuditAction],
    "object_": [k.value for k in ObjectKind],
    "actor_": [k.value for k in ActorKind],
    "token_state_": list(TOKEN_STATES),
    "delivery_": [d.value for d in Delivery],
    "severity_": [s.value for s in Severity],
    "language_": list(LANGUAGES),
}


def _templates() -> dict[str, str]:
    folder = files("patronlink.web").joinpath("templates/staff")
    return {t.name: t.read_text() for t in folder.iterdir()}


def test_every_value_key_exists_in_both_languages() -> None:
    missing = [f"{p}{v}" for p, values in DYNAMIC.items() for v in values if f"{p}{v}" not in TEXTS]
    assert missing == []


def test_every_built_key_in_a_template_has_its_values_listed() -> None:
    used = {
        prefix
        for text in _templates().values()
        for prefix in re.findall(r"""t\(\s*["']([a-z_]+_)["']\s*~""", text)
    }
    assert used, "the pattern no longer finds t('prefix_' ~ value)"
    assert used - set(DYNAMIC) == set()


def test_no_template_prints_a_raw_status_or_outcome() -> None:
    # {{ x.status }}, {{ x.outcome }}, {{ x.action }}, {{ x.trigger.value }} print English codes
    # (inside an attribute, data-action="{{ e.action }}" or class="x-{{ ... }}", they are fine).
    raw = re.compile(r"(?<![\"-])\{\{\s*[\w.]+\.(status|outcome|action|trigger)(\.value)?\s*\}\}")
    offenders = {name: raw.findall(text) for name, text in _templates().items() if raw.search(text)}
    assert offenders == {}
