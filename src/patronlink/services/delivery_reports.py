"""Provider callbacks: who may call, and recording what delivery reports say.

Each provider proves itself differently (HTTP Basic of an integration user for LINK, an HMAC in
Kannel's ``dlr-url``, a JWT for GatewayAPI); the web layer checks the proof with what
``callback_agency`` returns and hands the reports read from the body to ``record_reports``.
Reports are written once: ``OutboxRepository.apply_report`` never moves a text out of a final
state, so duplicates and late intermediate reports change nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from patronlink.domain.agency import Agency
from patronlink.domain.delivery import Report, kannel_signature
from patronlink.domain.errors import NotFound, Unauthenticated
from patronlink.services.clock import Clock
from patronlink.services.gateway_config import sms_settings
from patronlink.services.secrets import VerifiedPasswords, constant_time_equals, resolve
from patronlink.storage.database import Database

log = logging.getLogger("patronlink.delivery")


@dataclass(frozen=True)
class CallbackAgency:
    """The agency a callback names, with its SMS settings (secrets still as written)."""

    agency: Agency
    sms: dict[str, Any]
    settings: dict[str, Any]

    def secret(self, key: str, environ: Mapping[str, str]) -> str:
        """A gateway secret of the agency, resolved; empty when not configured."""
        value = self.sms.get(key)
        return resolve(str(value), environ) if value else ""


def callback_agency(db: Database, agency_ref: str) -> CallbackAgency:
    """The agency by ISIL or number; ``NotFound`` when there is none."""
    with db.transaction() as repos:
        found = repos.agencies.get_with_settings(agency_ref, branches=False)
    if found is None:
        raise NotFound(f"agency {agency_ref!r} does not exist")
    agency, settings = found
    return CallbackAgency(agency, sms_settings(settings), dict(settings))


def check_integration_user(
    db: Database, passwords: VerifiedPasswords, agency_ref: str, username: str, password: str
) -> CallbackAgency:
    """The agency, if ``username``/``password`` is one of its integration users.

    ``NotFound`` for no such agency, ``Unauthenticated`` for a wrong user or password. argon2
    runs outside any transaction (``VerifiedPasswords`` remembers recent successes).
    """
    with db.transaction() as repos:
        found = repos.agencies.with_credentials(agency_ref, username)
    if found is None:
        raise NotFound(f"agency {agency_ref!r} does not exist")
    agency, settings, stored = found
    if not passwords.verify(stored, password):
        raise Unauthenticated("wrong user or password")
    return CallbackAgency(agency, sms_settings(settings), dict(settings))


def check_kannel_signature(
    found: CallbackAgency, message_id: int, signature: str, environ: Mapping[str, str]
) -> None:
    """``Unauthenticated`` unless ``signature`` is the one the Kannel driver put in its dlr-url."""
    secret = found.secret("password", environ) if found.sms.get("driver") == "kannel" else ""
    if not secret:
        raise Unauthenticated("this agency does not send through Kannel")
    expected = kannel_signature(secret, found.agency.id, message_id)
    if not constant_time_equals(expected, signature):
        raise Unauthenticated("wrong signature")


def record_reports(
    db: Database, agency_id: str, provider: str, reports: Sequence[Report], clock: Clock
) -> list[str]:
    """Apply each report to the agency's text; per report ``applied``, ``ignored`` or ``unknown``.

    An unknown text (another agency's, or an id the provider made up, as in LINK's examples) is
    logged and answered 2xx all the same, so that the provider stops retrying.
    """
    now = clock()
    with db.transaction() as repos:
        results = [repos.outbox.apply_report(agency_id, report, now) for report in reports]
    for report, result in zip(reports, results, strict=True):
        if result == "unknown":
            log.warning(
                "delivery report for an unknown text",
                extra={
                    "provider": provider,
                    "agency": agency_id,
                    "message_id": report.message_id,
                    "code": report.code,
                },
            )
    return results
