"""Agencies, their branches, integration users and import sources."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Connection, bindparam, delete, insert, select, update

from patronlink.config.schema import AgencySettings
from patronlink.domain.agency import Agency, Branch, Language, is_bare_number
from patronlink.storage.tables import agencies, import_sources, integration_users
from patronlink.storage.tables import branches as _branches


def _credentials(by_number: bool) -> Any:
    # Built once: the hot path of renewal by SMS runs it on every request, and a statement
    # object that is reused also keeps its SQL cache key (no per-call construction or hashing).
    key = agencies.c.number if by_number else agencies.c.id
    return (
        select(agencies, integration_users.c.password_hash)
        .outerjoin(
            integration_users,
            (integration_users.c.agency_id == agencies.c.id)
            & (integration_users.c.username == bindparam("username")),
        )
        .where(key == bindparam("ref"))
    )


_CREDENTIALS_BY_ID = _credentials(by_number=False)
_CREDENTIALS_BY_NUMBER = _credentials(by_number=True)


class AgencyRepository:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def get(self, ref: str) -> Agency | None:
        """Find an agency by ISIL (``DK-761500``, any case of prefix) or by bare number."""
        found = self.get_with_settings(ref)
        return None if found is None else found[0]

    def get_with_settings(
        self, ref: str, *, branches: bool = True
    ) -> tuple[Agency, AgencySettings] | None:
        """The agency and its configured sections in one query (and one for the branches)."""
        ref = ref.strip()
        if "\x00" in ref:
            return None  # no id holds NUL, and PostgreSQL refuses it in a query (an error, a 500)
        if is_bare_number(ref):
            cond = agencies.c.number == ref
        else:
            prefix, _, rest = ref.partition("-")
            cond = agencies.c.id == f"{prefix.upper()}-{rest}"
        row = self._conn.execute(select(agencies).where(cond)).mappings().first()
        if row is None:
            return None
        return self._to_domain(row, branches=branches), AgencySettings.from_stored(
            row["settings"], row["id"]
        )

    def with_credentials(
        self, ref: str, username: str
    ) -> tuple[Agency, AgencySettings, str | None] | None:
        """The agency (no branches), its settings and the integration user's password hash
        (None: no such user), in one query."""
        ref = ref.strip()
        if "\x00" in ref or "\x00" in username:
            return None if "\x00" in ref else self._without_user(ref)
        if is_bare_number(ref):
            stmt, key = _CREDENTIALS_BY_NUMBER, ref
        else:
            prefix, _, rest = ref.partition("-")
            stmt, key = _CREDENTIALS_BY_ID, f"{prefix.upper()}-{rest}"
        row = self._conn.execute(stmt, {"ref": key, "username": username}).mappings().first()
        if row is None:
            return None
        agency = self._to_domain(row, branches=False)
        return agency, AgencySettings.from_stored(row["settings"], row["id"]), row["password_hash"]

    def _without_user(self, ref: str) -> tuple[Agency, AgencySettings, str | None] | None:
        found = self.get_with_settings(ref, branches=False)
        return None if found is None else (found[0], found[1], None)

    def list(self) -> list[Agency]:
        rows = self._conn.execute(select(agencies).order_by(agencies.c.id)).mappings().all()
        return [self._to_domain(r) for r in rows]

    def settings(self, agency_id: str) -> AgencySettings:
        """The agency's configured sections, typed (an agency without any: the defaults)."""
        value = self._conn.execute(
            select(agencies.c.settings).where(agencies.c.id == agency_id)
        ).scalar_one_or_none()
        return AgencySettings.from_stored(value, agency_id)

    def _to_domain(self, row: Any, *, branches: bool = True) -> Agency:
        branch_rows = (
            self._conn.execute(
                select(_branches.c.code, _branches.c.name)
                .where(_branches.c.agency_id == row["id"])
                .order_by(_branches.c.position)
            ).all()
            if branches
            else []
        )
        return Agency(
            id=row["id"],
            name=row["name"],
            timezone=row["timezone"],
            language=Language(row["language"]),
            country_code=row["country_code"],
            branches=tuple(Branch(code=b.code, name=b.name) for b in branch_rows),
        )

    def upsert(self, agency: Agency, settings: AgencySettings, now: dt.datetime) -> bool:
        """Create or update; returns True when anything changed."""
        values = {
            "number": agency.number,
            "name": agency.name,
            "timezone": agency.timezone,
            "language": agency.language.value,
            "country_code": agency.country_code,
            "settings": settings.stored(),
        }
        existing = (
            self._conn.execute(select(agencies).where(agencies.c.id == agency.id))
            .mappings()
            .first()
        )
        changed = False
        if existing is None:
            self._conn.execute(
                insert(agencies).values(id=agency.id, created_at=now, updated_at=now, **values)
            )
            changed = True
        elif any(existing[k] != v for k, v in values.items()):
            self._conn.execute(
                update(agencies).where(agencies.c.id == agency.id).values(updated_at=now, **values)
            )
            changed = True
        current = [
            Branch(code=r.code, name=r.name)
            for r in self._conn.execute(
                select(_branches.c.code, _branches.c.name)
                .where(_branches.c.agency_id == agency.id)
                .order_by(_branches.c.position)
            )
        ]
        if current != list(agency.branches):
            self._conn.execute(delete(_branches).where(_branches.c.agency_id == agency.id))
            if agency.branches:
                self._conn.execute(
                    insert(_branches),
                    [
                        {"agency_id": agency.id, "code": b.code, "name": b.name, "position": i}
                        for i, b in enumerate(agency.branches)
                    ],
                )
            changed = True
        return changed


class IntegrationUserRepository:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def password_hash(self, agency_id: str, username: str) -> str | None:
        value = self._conn.execute(
            select(integration_users.c.password_hash).where(
                integration_users.c.agency_id == agency_id,
                integration_users.c.username == username,
            )
        ).scalar_one_or_none()
        return value

    def usernames(self, agency_id: str) -> list[str]:
        return list(
            self._conn.execute(
                select(integration_users.c.username)
                .where(integration_users.c.agency_id == agency_id)
                .order_by(integration_users.c.username)
            ).scalars()
        )

    def set_password_hash(self, agency_id: str, username: str, password_hash: str) -> None:
        updated = self._conn.execute(
            update(integration_users)
            .where(
                integration_users.c.agency_id == agency_id,
                integration_users.c.username == username,
            )
            .values(password_hash=password_hash)
        )
        if updated.rowcount == 0:
            self._conn.execute(
                insert(integration_users).values(
                    agency_id=agency_id, username=username, password_hash=password_hash
                )
            )

    def remove_except(self, agency_id: str, keep: set[str]) -> int:
        stmt = delete(integration_users).where(integration_users.c.agency_id == agency_id)
        if keep:
            stmt = stmt.where(integration_users.c.username.not_in(keep))
        return self._conn.execute(stmt).rowcount


class ImportSourceRepository:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def get(self, source_id: str) -> tuple[str, dict[str, Any]] | None:
        """The source's agency id and its settings."""
        row = self._conn.execute(
            select(import_sources.c.agency_id, import_sources.c.settings).where(
                import_sources.c.id == source_id
            )
        ).first()
        return None if row is None else (row.agency_id, dict(row.settings))

    def list(self, agency_id: str | None = None) -> list[tuple[str, str, dict[str, Any]]]:
        stmt = select(import_sources).order_by(import_sources.c.id)
        if agency_id is not None:
            stmt = stmt.where(import_sources.c.agency_id == agency_id)
        return [(r.id, r.agency_id, dict(r.settings)) for r in self._conn.execute(stmt)]

    def upsert(
        self, source_id: str, agency_id: str, settings: dict[str, Any], now: dt.datetime
    ) -> bool:
        existing = self.get(source_id)
        if existing is None:
            self._conn.execute(
                insert(import_sources).values(
                    id=source_id,
                    agency_id=agency_id,
                    settings=settings,
                    created_at=now,
                    updated_at=now,
                )
            )
            return True
        if existing == (agency_id, settings):
            return False
        self._conn.execute(
            update(import_sources)
            .where(import_sources.c.id == source_id)
            .values(agency_id=agency_id, settings=settings, updated_at=now)
        )
        return True
