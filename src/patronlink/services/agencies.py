"""Looking agencies up by any of their names, within the caller's scope."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from patronlink.domain.agency import Agency
from patronlink.domain.errors import NotFound
from patronlink.storage.database import Database, Repositories


def require_agency(repos: Repositories, ref: str) -> Agency:
    """The agency by ISIL or bare number; ``NotFound`` names what was asked for."""
    agency = repos.agencies.get(ref)
    if agency is None:
        raise NotFound(f"agency {ref!r} does not exist")
    return agency


def get_agency(db: Database, ref: str) -> Agency:
    """The agency by ISIL or bare number; ``NotFound`` when there is none."""
    with db.transaction() as repos:
        return require_agency(repos, ref)


def find_agency(db: Database, ref: str) -> Agency | None:
    """The agency by ISIL or bare number; None when there is none."""
    with db.transaction() as repos:
        return repos.agencies.get(ref)


def list_agencies(db: Database) -> list[Agency]:
    """Every agency, by ISIL."""
    with db.transaction() as repos:
        return repos.agencies.list()


def country_of(db: Database, agency_id: str | None) -> str | None:
    """The agency's country code; without an agency (or for none such), the first agency's;
    None when there is no agency at all."""
    with db.transaction() as repos:
        agency = repos.agencies.get(agency_id) if agency_id else None
        known = [agency] if agency else repos.agencies.list()
    return known[0].country_code if known else None


@dataclass(frozen=True)
class Configuration:
    """What ``config apply`` stored for an agency: its settings, integration users, sources."""

    agency: Agency
    settings: dict[str, Any]
    integration_users: list[str]
    import_sources: list[tuple[str, dict[str, Any]]]  # (source id, its settings)


def configuration(db: Database, ref: str) -> Configuration | None:
    """The agency's stored configuration; None when there is no such agency."""
    with db.transaction() as repos:
        agency = repos.agencies.get(ref)
        if agency is None:
            return None
        return Configuration(
            agency,
            repos.agencies.settings(agency.id).stored(),
            repos.integration_users.usernames(agency.id),
            [(source_id, s) for source_id, _, s in repos.import_sources.list(agency.id)],
        )
