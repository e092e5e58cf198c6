"""The staff session: a signed cookie, and the CSRF token every form carries.

The cookie holds no secret of its own: a CSRF token, the chosen language, the signed-in user's id
and a one-off notice. It is signed with ``PATRONLINK_SECRET_KEY`` (itsdangerous, HMAC-SHA1 over a
derived key) and carries its issue time, so a tampered or expired cookie reads as an empty
session. HttpOnly keeps it from scripts; SameSite=Lax keeps other sites' forms from sending it;
the CSRF token is the second lock for browsers that ignore SameSite.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass, field
from typing import Any

from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.responses import Response

COOKIE = "patronlink_staff"
CSRF_FIELD = "csrf_token"


def _new_token() -> str:
    return secrets.token_urlsafe(32)


@dataclass
class Session:
    csrf: str = field(default_factory=_new_token)
    language: str | None = None
    user_id: int | None = None
    notice: str | None = None  # shown once on the next page (after a redirect)

    def sign_in(self, user_id: int) -> None:
        """A new CSRF token on login, so that a token seen before login is worth nothing after."""
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
        """The session in the cookie; a fresh one when it is missing, forged or too old."""
        if not cookie:
            return Session()
        try:
            data: Any = self._serializer.loads(cookie, max_age=self.max_age)
        except BadSignature:  # also SignatureExpired, its subclass
            return Session()
        if not isinstance(data, dict) or not isinstance(data.get("c"), str):
            return Session()
        user = data.get("u")
        return Session(
            csrf=data["c"],
            language=data.get("l") if isinstance(data.get("l"), str) else None,
            user_id=user if isinstance(user, int) else None,
            notice=data.get("n") if isinstance(data.get("n"), str) else None,
        )

    def write(self, response: Response, session: Session) -> None:
        value = self._serializer.dumps(
            {"c": session.csrf, "l": session.language, "u": session.user_id, "n": session.notice}
        )
        response.set_cookie(
            COOKIE,
            value,
            max_age=self.max_age,
            path="/staff",
            httponly=True,
            samesite="lax",
            secure=self.secure,
        )
