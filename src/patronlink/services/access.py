"""Staff API tokens."""

from __future__ import annotations

import datetime as dt

from patronlink.domain.audit import SYSTEM, Actor, AuditAction, ObjectKind
from patronlink.domain.errors import Conflict, NotFound, ValidationError
from patronlink.domain.paging import Paged
from patronlink.services import audit
from patronlink.services.agencies import require_agency
from patronlink.services.clock import Clock
from patronlink.services.secrets import hash_api_token, new_api_token
from patronlink.storage.access import TokenInfo, TokenScope
from patronlink.storage.database import Database


def create_token(
    db: Database,
    name: str,
    agency_ref: str | None,
    clock: Clock,
    *,
    actor: Actor = SYSTEM,
    expires_at: dt.datetime | None = None,
) -> str:
    """Create a token scoped to one agency (or all when ``agency_ref`` is None); returns it once.

    With ``expires_at`` the token stops working at that time.
    """
    token, token_hash = new_api_token()
    now = clock()
    if expires_at is not None and expires_at <= now:
        raise ValidationError("the expiry is in the past", field="expires")
    with db.transaction() as repos:
        agency_id = require_agency(repos, agency_ref).id if agency_ref else None
        label = name.strip() or "unnamed"
        token_id = repos.tokens.add(label, agency_id, token_hash, now, expires_at)
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


def authenticate(db: Database, token: str, now: dt.datetime | None = None) -> TokenScope | None:
    """The token's scope; None when it is unknown, revoked or expired. A use is recorded."""
    with db.transaction() as repos:
        return repos.tokens.scope(hash_api_token(token), now)


def page_tokens(
    db: Database, agency_id: str | None = None, *, limit: int, offset: int = 0
) -> Paged[TokenInfo]:
    """A page of tokens, newest first (``agency_id``: only that agency's), with the total."""
    with db.transaction() as repos:
        tokens = repos.tokens
        return Paged(
            tokens.list(agency_id, limit=limit, offset=offset),
            tokens.count(agency_id),
            offset,
            limit,
        )


def revoke_token(db: Database, token_id: int, clock: Clock, *, actor: Actor) -> TokenInfo:
    """Revoke at once (the next request with it is refused); audited."""
    now = clock()
    with db.transaction() as repos:
        found = repos.tokens.get(token_id)
        if found is None:
            raise NotFound(f"token {token_id} does not exist")
        if not repos.tokens.revoke(token_id, now):
            raise Conflict(f"token {token_id} is revoked already")
        audit.record(
            repos,
            actor,
            AuditAction.TOKEN_REVOKE,
            ObjectKind.TOKEN,
            token_id,
            agency_id=found.agency_id,
            at=now,
            name=found.name,
        )
        return found
