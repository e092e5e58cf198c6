"""Staff users of the web UI: create, list, disable and enable them, check a login, reset a
password (which ends the user's sessions), remember the chosen language.

Creating, disabling, enabling and resetting a password are audited in the transaction that makes
the change, named by the ``actor`` (the CLI's operator or the administrator in the staff UI).
"""

from __future__ import annotations

import re
import secrets

from patronlink.domain.audit import SYSTEM, Actor, AuditAction, ObjectKind
from patronlink.domain.errors import Conflict, NotFound, ValidationError
from patronlink.domain.paging import Paged
from patronlink.services import audit
from patronlink.services.agencies import require_agency
from patronlink.services.clock import Clock
from patronlink.services.secrets import hash_password, verify_password
from patronlink.storage.database import Database
from patronlink.storage.staff_users import StaffUser, StaffUserRepository, StaffUserRow

LANGUAGES = ("da", "en")
MIN_PASSWORD_LENGTH = 10
_USERNAME = re.compile(r"^[A-Za-z0-9._@-]{1,64}$")


def create_staff_user(
    db: Database,
    username: str,
    password: str,
    agency_ref: str | None,
    clock: Clock,
    *,
    language: str = "da",
    actor: Actor = SYSTEM,
) -> StaffUser:
    """A user of one agency, or an administrator of all when ``agency_ref`` is None."""
    username = username.strip()
    if not _USERNAME.match(username):
        raise ValidationError("a user name is 1-64 letters, digits or . _ @ -", field="username")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValidationError(
            f"the password must have at least {MIN_PASSWORD_LENGTH} characters", field="password"
        )
    if language not in LANGUAGES:
        raise ValidationError(f"language must be one of {', '.join(LANGUAGES)}", field="language")
    password_hash = hash_password(password)  # slow on purpose: outside the transaction
    with db.transaction() as repos:
        agency_id = require_agency(repos, agency_ref).id if agency_ref else None
        users = repos.staff_users
        if users.exists(username):
            raise Conflict(f"staff user {username!r} exists already")
        now = clock()
        user_id = users.add(username, password_hash, agency_id, language, now)
        audit.record(
            repos,
            actor,
            AuditAction.USER_CREATE,
            ObjectKind.STAFF_USER,
            username,
            agency_id=agency_id,
            at=now,
            administrator=agency_id is None,
            language=language,
        )
    return StaffUser(user_id, username, agency_id, language)


def check_login(db: Database, username: str, password: str) -> StaffUser | None:
    """The user when the password is right and the user is enabled; None otherwise, in the
    same time either way (a disabled user's password is checked all the same)."""
    with db.transaction() as repos:
        found = repos.staff_users.credentials(username.strip())
    # argon2 runs outside the transaction: it must not hold SQLite's write lock.
    if not verify_password(found[1] if found else None, password) or found is None:
        return None
    user, _hash, disabled = found
    return None if disabled else user


def get_staff_user(db: Database, user_id: int) -> StaffUser | None:
    with db.transaction() as repos:
        return repos.staff_users.get(user_id)


def remember_language(db: Database, user_id: int, language: str) -> None:
    if language not in LANGUAGES:
        raise ValidationError(f"language must be one of {', '.join(LANGUAGES)}", field="language")
    with db.transaction() as repos:
        repos.staff_users.set_language(user_id, language)


def page_staff_users(db: Database, limit: int, offset: int = 0) -> Paged[StaffUserRow]:
    """One page of users by name, with the total for "1-100 of 117"."""
    with db.transaction() as repos:
        users = repos.staff_users
        return Paged(users.listing(limit, offset), users.count(), offset, limit)


def new_password() -> str:
    """A password an administrator hands on (shown once): 96 random bits, 16 characters."""
    return secrets.token_urlsafe(12)


def _require(users: StaffUserRepository, username: str) -> StaffUser:
    found = users.credentials(username.strip())
    if found is None:
        raise NotFound(f"staff user {username!r} does not exist")
    return found[0]


def disable_staff_user(db: Database, username: str, clock: Clock, *, actor: Actor) -> int:
    """Refuse the user's logins from now on and end their sessions; how many were ended."""
    now = clock()
    with db.transaction() as repos:
        users = repos.staff_users
        user = _require(users, username)
        users.set_disabled(user.id, now)
        ended = repos.staff_sessions.delete_for_user(user.id)
        audit.record(
            repos,
            actor,
            AuditAction.USER_DISABLE,
            ObjectKind.STAFF_USER,
            user.username,
            agency_id=user.agency_id,
            at=now,
            sessions_ended=ended,
        )
        return ended


def enable_staff_user(db: Database, username: str, clock: Clock, *, actor: Actor) -> None:
    with db.transaction() as repos:
        users = repos.staff_users
        user = _require(users, username)
        users.set_disabled(user.id, None)
        audit.record(
            repos,
            actor,
            AuditAction.USER_ENABLE,
            ObjectKind.STAFF_USER,
            user.username,
            agency_id=user.agency_id,
            at=clock(),
        )


def reset_staff_password(
    db: Database, username: str, password: str, clock: Clock, *, actor: Actor
) -> int:
    """A new password; every session of the user ends (how many were ended)."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValidationError(
            f"the password must have at least {MIN_PASSWORD_LENGTH} characters", field="password"
        )
    password_hash = hash_password(password)  # slow on purpose: outside the transaction
    with db.transaction() as repos:
        users = repos.staff_users
        user = _require(users, username)
        users.set_password_hash(user.id, password_hash)
        ended = repos.staff_sessions.delete_for_user(user.id)
        # The password itself never reaches the log (audit.record drops such keys as well).
        audit.record(
            repos,
            actor,
            AuditAction.USER_RESET_PASSWORD,
            ObjectKind.STAFF_USER,
            user.username,
            agency_id=user.agency_id,
            at=clock(),
            sessions_ended=ended,
        )
        return ended
