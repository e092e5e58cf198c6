"""The staff session, and the CSRF token every form carries.

Signed in, the cookie holds only an opaque id (``s.`` and 256 random bits): the session itself
(user, CSRF token, language, notice) lives in the database (``services/staff_sessions.py``), so
logging out, disabling the user or resetting the password ends it at once, as do the idle and
absolute limits. Before login the cookie holds what the login page needs (a CSRF token, the
chosen language, a one-off notice) signed with ``PATRONLINK_SECRET_KEY`` (itsdangerous), never a
user: a tampered, expired or forged cookie reads as an empty session. HttpOnly keeps the cookie
from scripts; SameSite=Lax keeps other sites' forms from sending it; the CSRF token is the second
lock for browsers that ignore SameSite.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass, field
from typing import Any

from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.responses import Response

from patronlink.services.clock import Clock
from patronlink.services.staff_sessions import (
    SessionLimits,
    end_session,
    load_session,
    open_session,
    save_session,
)
from patronlink.storage.database import Database

COOKIE = "patronlink_staff"
SERVER_SIDE = "s."  # a cookie value with this prefix is the id of a server-side session
CSRF_FIELD = "csrf_token"


def _new_token() -> str:
    return secrets.token_urlsafe(32)


@dataclass
class Session:
    csrf: str = field(default_factory=_new_token)
    language: str | None = None
    user_id: int | None = None
    notice: str | None = None  # shown once on the next page (after a redirect)
    # The server-side session this one was read from (None before login); ``saved`` is what
    # it held then, so that an unchanged session is not written back.
    session_id: str | None = None
    saved: tuple[str, str | None, str | None] | None = None
    replaced: str | None = None  # a session this one took over at login: ended on write

    def sign_in(self, user_id: int) -> None:
        """A new CSRF token on login, so that a token seen before login is worth nothing after;
        a new server-side session when the response is written."""
        self.replaced, self.session_id, self.saved = self.session_id, None, None
        self.user_id = user_id
        self.csrf = _new_token()

    def sign_out(self) -> None:
        self.user_id = None
        self.csrf = _new_token()

    def csrf_matches(self, sent: str | None) -> bool:
        return sent is not None and hmac.compare_digest(sent.encode(), self.csrf.encode())

    def take_notice(self) -> str | None:
        notice, self.notice = self.notice, None
        return notice


class SessionCodec:
    def __init__(self, secret_key: str, *, max_age_seconds: int, secure: bool) -> None:
        self._serializer = URLSafeTimedSerializer(secret_key, salt="patronlink.staff.session")
        self.max_age = max_age_seconds
        self.secure = secure

    def read(self, cookie: str | None) -> Session:
        """The anonymous session in the cookie; a fresh one when it is missing, forged or old."""
        if not cookie or cookie.startswith(SERVER_SIDE):
            return Session()
        try:
            data: Any = self._serializer.loads(cookie, max_age=self.max_age)
        except BadSignature:  # also SignatureExpired, its subclass
            return Session()
        if not isinstance(data, dict) or not isinstance(data.get("c"), str):
            return Session()
        return Session(
            csrf=data["c"],
            language=data.get("l") if isinstance(data.get("l"), str) else None,
            notice=data.get("n") if isinstance(data.get("n"), str) else None,
        )

    def write(self, response: Response, session: Session) -> None:
        """The anonymous part only: a user id never goes into a signed cookie."""
        self.set(
            response,
            self._serializer.dumps({"c": session.csrf, "l": session.language, "n": session.notice}),
        )

    def set(self, response: Response, value: str) -> None:
        response.set_cookie(
            COOKIE,
            value,
            max_age=self.max_age,
            path="/staff",
            httponly=True,
            samesite="lax",
            secure=self.secure,
        )


class SessionStore:
    """Reads and writes the staff session: server-side once signed in, signed cookie before."""

    def __init__(
        self, codec: SessionCodec, db: Database, clock: Clock, limits: SessionLimits
    ) -> None:
        self.codec = codec
        self._db = db
        self._clock = clock
        self.limits = limits

    def read(self, cookie: str | None) -> Session:
        if not cookie or not cookie.startswith(SERVER_SIDE):
            return self.codec.read(cookie)
        session_id = cookie[len(SERVER_SIDE) :]
        found = load_session(self._db, session_id, self._clock, self.limits) if session_id else None
        if found is None:  # ended, expired or never was
            return Session()
        return Session(
            csrf=found.csrf,
            language=found.language,
            user_id=found.user_id,
            notice=found.notice,
            session_id=session_id,
            saved=(found.csrf, found.language, found.notice),
        )

    def write(self, response: Response, session: Session) -> None:
        now_state = (session.csrf, session.language, session.notice)
        if session.replaced is not None:
            end_session(self._db, session.replaced)
            session.replaced = None
        if session.user_id is None:
            if session.session_id is not None:  # logged out (or the user is gone)
                end_session(self._db, session.session_id)
                session.session_id = session.saved = None
            self.codec.write(response, session)
            return
        if session.session_id is None:  # just logged in: a new id (no fixation of an old one)
            session.session_id = open_session(
                self._db,
                session.user_id,
                csrf=session.csrf,
                language=session.language,
                notice=session.notice,
                clock=self._clock,
                limits=self.limits,
            )
        elif session.saved != now_state:
            save_session(
                self._db,
                session.session_id,
                csrf=session.csrf,
                language=session.language,
                notice=session.notice,
                clock=self._clock,
            )
        session.saved = now_state
        self.codec.set(response, SERVER_SIDE + session.session_id)
