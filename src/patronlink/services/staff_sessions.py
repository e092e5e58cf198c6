"""Server-side staff sessions: opened at login, ended by logout, idleness or age.

The cookie carries a random id (256 bits) and nothing else; the database keeps the session under
the id's SHA-256, with the user, the CSRF token, the language and a one-off notice. A session
ends when the user logs out, is disabled or gets a new password (``staff_users``), when it was
not used for ``idle`` or when it is older than ``absolute`` — whichever comes first.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from dataclasses import dataclass

from patronlink.services.clock import Clock
from patronlink.storage.database import Database
from patronlink.storage.staff_sessions import StoredSession

# Writing last_seen_at on every page view would make each view a write; a minute of slack on
# a 30-minute idle limit is not worth one.
TOUCH_AFTER = dt.timedelta(minutes=1)


@dataclass(frozen=True, slots=True)
class SessionLimits:
    idle: dt.timedelta
    absolute: dt.timedelta


def _hash(session_id: str) -> str:
    return hashlib.sha256(session_id.encode("utf-8", "surrogatepass")).hexdigest()


def open_session(
    db: Database,
    user_id: int,
    *,
    csrf: str,
    language: str | None,
    notice: str | None,
    clock: Clock,
    limits: SessionLimits,
) -> str:
    """A new session of ``user_id``; returns the id for the cookie (never stored as it is).

    Sessions of anyone that are past their limits are deleted on the way (logins are rare).
    """
    session_id = secrets.token_urlsafe(32)
    now = clock()
    with db.transaction() as repos:
        store = repos.staff_sessions
        store.delete_older(seen_before=now - limits.idle, created_before=now - limits.absolute)
        store.add(_hash(session_id), user_id, csrf, language, now, notice)
    return session_id


def load_session(
    db: Database, session_id: str, clock: Clock, limits: SessionLimits
) -> StoredSession | None:
    """The live session with this id, or None (unknown, ended, idle too long or too old)."""
    now = clock()
    key = _hash(session_id)
    with db.transaction() as repos:
        store = repos.staff_sessions
        found = store.get(key)
        if found is None:
            return None
        if now - found.last_seen_at >= limits.idle or now - found.created_at >= limits.absolute:
            store.delete(key)
            return None
        if now - found.last_seen_at >= TOUCH_AFTER:
            store.touch(key, now)
    return found


def save_session(
    db: Database,
    session_id: str,
    *,
    csrf: str,
    language: str | None,
    notice: str | None,
    clock: Clock,
) -> None:
    with db.transaction() as repos:
        repos.staff_sessions.update(
            _hash(session_id), csrf=csrf, language=language, notice=notice, last_seen_at=clock()
        )


def end_session(db: Database, session_id: str) -> None:
    with db.transaction() as repos:
        repos.staff_sessions.delete(_hash(session_id))
