"""Staff API tokens."""

from __future__ import annotations

from patronlink.domain.audit import SYSTEM, Actor, AuditAction, ObjectKind
from patronlink.services import audit
from patronlink.services.agencies import require_agency
from patronlink.services.clock import Clock
from patronlink.services.secrets import hash_api_token, new_api_token
from patronlink.storage.access import TokenScope
from patronlink.storage.database import Database


def create_token(
    db: Database, name: str, agency_ref: str | None, clock: Clock, *, actor: Actor = SYSTEM
) -> str:
    """Create a token scoped to one agency (or all when ``agency_ref`` is None); returns it once."""
    token, token_hash = new_api_token()
    now = clock()
    with db.transaction() as repos:
        agency_id = require_agency(repos, agency_ref).id if agency_ref else None
        label = name.strip() or "unnamed"
        token_id = repos.tokens.add(label, agency_id, token_hash, now)
        audit.record(
            repos,
            actor,
            AuditAction.TOKEN_CREATE,
            ObjectKind.TOKEN,
            token_id,
            agency_id=agency_id,
            at=now,
            name=label,
        )
    return token


def authenticate(db: Database, token: str) -> TokenScope | None:
    with db.transaction() as repos:
        return repos.tokens.scope(hash_api_token(token))
