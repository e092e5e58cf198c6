"""The configuration in the database, as the TOML that ``config apply`` reads (``config show``).

Secrets are never printed: a ``${VAR}`` reference is shown as written (it names the variable,
not the value); a secret stored in clear, and every integration user's password (stored only as
a hash), is shown as ``HIDDEN``, so the output must have those filled in before it is applied.
"""

from __future__ import annotations

import re
from typing import Any

from patronlink.services.agencies import require_agency
from patronlink.services.secrets import is_reference
from patronlink.storage.database import Database

HIDDEN = "<hidden>"
_SECRET_KEY = re.compile(r"password|secret|token|key$", re.IGNORECASE)


def _masked(node: Any, key: str = "") -> Any:
    if isinstance(node, dict):
        return {k: _masked(v, k) for k, v in node.items() if v is not None}
    if isinstance(node, list):
        return [_masked(v, key) for v in node if v is not None]
    if isinstance(node, str) and _SECRET_KEY.search(key) and node and not is_reference(node):
        return HIDDEN
    return node


def export_config(db: Database, agency_ref: str | None = None) -> dict[str, Any]:
    """Agencies (one, or all) with their sections, integration users and import sources."""
    with db.transaction() as repos:
        chosen = [require_agency(repos, agency_ref)] if agency_ref else repos.agencies.list()
        agencies: list[dict[str, Any]] = []
        sources: list[dict[str, Any]] = []
        for agency in chosen:
            entry: dict[str, Any] = {
                "id": agency.id,
                "name": agency.name,
                "timezone": agency.timezone,
                "language": agency.language.value,
                "country_code": agency.country_code,
                "branches": [{"code": b.code, "name": b.name} for b in agency.branches],
            }
            settings = repos.agencies.settings(agency.id).stored()
            if settings.get("retention_days"):
                entry["retention_days"] = settings["retention_days"]
            for section in ("sms", "renewal", "registration", "texts"):
                if settings.get(section):
                    entry[section] = _masked(settings[section])
            users = repos.integration_users.usernames(agency.id)
            if users:
                entry["integration_users"] = [{"username": u, "password": HIDDEN} for u in users]
            agencies.append(entry)
            for source_id, owner, source in repos.import_sources.list(agency.id):
                sources.append({"id": source_id, "agency": owner, **_masked(source)})
    document: dict[str, Any] = {"agencies": agencies}
    if sources:
        document["import_sources"] = sources
    return document
