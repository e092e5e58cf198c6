"""At start, ``serve`` and ``worker`` check that every ``${VAR}`` the configuration names is set
in their own environment: ``config apply`` saw the applying shell's, which may not be theirs."""

from __future__ import annotations

from collections.abc import Mapping

from patronlink.services.secrets import missing_variables
from patronlink.storage.database import Database


def missing_secrets(db: Database, environ: Mapping[str, str]) -> dict[str, list[str]]:
    """For each agency and import source whose settings name an unset variable: the names."""
    found: dict[str, list[str]] = {}
    with db.transaction() as repos:
        for agency in repos.agencies.list():
            names = missing_variables(repos.agencies.settings(agency.id).stored(), environ)
            if names:
                found[f"agency {agency.id}"] = sorted(names)
        for source_id, _agency, settings in repos.import_sources.list():
            names = missing_variables(settings, environ)
            if names:
                found[f"import source {source_id}"] = sorted(names)
    return found


def describe(missing: Mapping[str, list[str]]) -> list[str]:
    """One line per owner, naming the variables (never a value)."""
    return [
        f"{owner}: environment variable(s) not set in this process: {', '.join(names)}"
        for owner, names in missing.items()
    ]
