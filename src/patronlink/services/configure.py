"""Apply a validated configuration file to the database, declaratively and in one transaction.

Applying the same file twice changes nothing: every row is compared before it is written, and an
integration user's password is re-hashed only when it no longer verifies against the stored hash.
Agencies and sources absent from the file are left as they are (never deleted by omission);
integration users of an agency in the file are exactly those the file lists.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from patronlink.config.loader import LoadedConfig
from patronlink.config.schema import AgencyConfig, AgencySettings
from patronlink.domain.agency import Agency, Branch, Language
from patronlink.domain.audit import SYSTEM, Actor, AuditAction, ObjectKind
from patronlink.services import audit
from patronlink.services.clock import Clock
from patronlink.services.secrets import hash_password, resolve, verify_password
from patronlink.storage.database import Database


@dataclass
class ApplyReport:
    changes: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.changes)


def agency_settings(config: AgencyConfig) -> AgencySettings:
    """The sections stored with the agency (secrets still as written, ``${VAR}`` unresolved)."""
    return config.settings()


def apply_config(
    db: Database,
    loaded: LoadedConfig,
    environ: Mapping[str, str],
    clock: Clock,
    *,
    actor: Actor = SYSTEM,
) -> ApplyReport:
    """Apply in one transaction; a run that changed something is audited with its changes."""
    report = ApplyReport()
    now = clock()
    with db.transaction() as repos:
        for ac in loaded.config.agencies:
            agency = Agency(
                id=ac.id,
                name=ac.name,
                timezone=ac.timezone,
                language=Language(ac.language),
                country_code=ac.country_code,
                branches=tuple(Branch(code=b.code, name=b.name) for b in ac.branches),
            )
            existed = repos.agencies.get(ac.id) is not None
            if repos.agencies.upsert(agency, agency_settings(ac), now):
                report.changes.append(f"agency {ac.id}: {'updated' if existed else 'created'}")
            wanted = set()
            for user in ac.integration_users:
                wanted.add(user.username)
                password = resolve(user.password, environ)
                current = repos.integration_users.password_hash(ac.id, user.username)
                if current is None or not verify_password(current, password):
                    repos.integration_users.set_password_hash(
                        ac.id, user.username, hash_password(password)
                    )
                    verb = "created" if current is None else "password changed"
                    report.changes.append(f"integration user {ac.id}/{user.username}: {verb}")
            removed = repos.integration_users.remove_except(ac.id, wanted)
            if removed:
                report.changes.append(f"agency {ac.id}: {removed} integration user(s) removed")
        for source in loaded.config.import_sources:
            settings = source.model_dump(mode="json", exclude={"id", "agency"})
            existed = repos.import_sources.get(source.id) is not None
            if repos.import_sources.upsert(source.id, source.agency, settings, now):
                verb = "updated" if existed else "created"
                report.changes.append(f"import source {source.id}: {verb}")
        if report.changed:
            audit.record(
                repos,
                actor,
                AuditAction.CONFIG_APPLY,
                ObjectKind.CONFIGURATION,
                "libraries",
                agency_id=None,
                at=now,
                changes=report.changes,
            )
    return report
