"""What every staff page shares: the session, the signed-in user, templates and the CSRF check.

Route modules take ``PageDep`` (anyone) or ``StaffDep`` (signed in), and ``FormDep`` on every
POST: it reads the url-encoded body and refuses the request with 403 unless the form's CSRF token
matches the session's.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import zoneinfo
from dataclasses import dataclass
from http import HTTPStatus
from typing import Annotated, Any
from urllib.parse import parse_qsl, quote

from fastapi import Depends, Request
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from starlette.responses import HTMLResponse, RedirectResponse, Response

from patronlink.domain import phone
from patronlink.domain.agency import Agency
from patronlink.domain.audit import Actor, ActorKind
from patronlink.domain.errors import NotFound, ValidationError
from patronlink.domain.paging import Paged
from patronlink.services.agencies import country_of, find_agency, list_agencies
from patronlink.services.clock import Clock
from patronlink.services.staff_users import get_staff_user
from patronlink.services.throttle import Throttle
from patronlink.storage.database import Database, StaffUser
from patronlink.web.staff.i18n import Translator, from_accept_language, language_of, translator
from patronlink.web.staff.session import COOKIE, CSRF_FIELD, Session, SessionStore

MAX_FORM_BYTES = 256 * 1024
# Pages never go to another origin, run no inline script and may not be framed (clickjacking).
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'; form-action 'self'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def templates() -> Environment:
    env = Environment(
        loader=PackageLoader("patronlink.web", "templates"),
        autoescape=select_autoescape(default=True),
        undefined=StrictUndefined,  # a typo in a template fails the test, not the reader
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["when"] = _when
    return env


def _when(value: dt.datetime | None, zone: zoneinfo.ZoneInfo) -> str:
    if value is None:
        return ""
    return value.astimezone(zone).strftime("%Y-%m-%d %H:%M")


@dataclass
class StaffState:
    """Held in ``app.state.staff``: made once per app from the settings."""

    sessions: SessionStore
    env: Environment
    throttle: Throttle  # wrong logins per user at an address, per user and per address


@dataclass(frozen=True)
class Pager:
    summary: str
    previous: str | None
    next: str | None
    total: int


class LoginRequired(Exception):
    def __init__(self, next_path: str) -> None:
        super().__init__("sign in first")
        self.next_path = next_path


class CsrfRefused(Exception):
    pass


class Page:
    """One request to a staff page: its session, user, language and how to answer."""

    def __init__(self, request: Request, session: Session, user: StaffUser | None) -> None:
        self.request = request
        self.session = session
        self.user = user
        self.state: StaffState = request.app.state.staff
        self.db: Database = request.app.state.db
        self.clock: Clock = request.app.state.clock
        self.language = (
            language_of(session.language)
            or (user.language if user else None)
            or from_accept_language(request.headers.get("accept-language"))
        )
        self.t: Translator = translator(self.language)
        self.zone = zoneinfo.ZoneInfo("UTC")  # an administrator's pages span agencies
        if user is not None and user.agency_id is not None:
            own = find_agency(self.db, user.agency_id)
            if own is not None:
                self.zone = own.zone

    # answering -------------------------------------------------------------------------------
    def finish(self, response: Response) -> Response:
        self.state.sessions.write(response, self.session)
        response.headers.update(SECURITY_HEADERS)
        return response

    def render(self, template: str, *, status: int = 200, **context: Any) -> Response:
        body = self.state.env.get_template(f"staff/{template}").render(
            t=self.t,
            lang=self.language,
            user=self.user,
            csrf_field=CSRF_FIELD,
            csrf=self.session.csrf,
            notice=self.session.take_notice(),
            path=self.request.url.path,
            here=self.here(),
            zone=self.zone,
            **context,
        )
        return self.finish(HTMLResponse(body, status_code=status))

    def redirect(self, to: str, notice: str | None = None) -> Response:
        if notice:
            self.session.notice = notice
        return self.finish(RedirectResponse(to, status_code=303))

    def here(self) -> str:
        query = self.request.url.query
        return self.request.url.path + (f"?{query}" if query else "")

    def pager(self, paged: Paged[Any]) -> Pager:
        """What the page's list footer shows: "1-100 of 117" and the links to its neighbours."""

        def url(offset: int | None) -> str | None:
            if offset is None:
                return None
            target = self.request.url.include_query_params(offset=offset)
            return f"{target.path}?{target.query}"

        return Pager(
            summary=self.t("range_of", first=paged.first, last=paged.last, total=paged.total),
            previous=url(paged.previous_offset),
            next=url(paged.next_offset),
            total=paged.total,
        )

    # scope -------------------------------------------------------------------------------------
    @property
    def staff(self) -> StaffUser:
        assert self.user is not None  # StaffDep guarantees it
        return self.user

    @property
    def actor(self) -> Actor:
        """The signed-in user as the audit log names them, with the client's address."""
        client = self.request.client.host if self.request.client else None
        return Actor(ActorKind.STAFF, self.staff.username, client)

    def agencies(self) -> list[Agency]:
        return [a for a in list_agencies(self.db) if self.staff.allows(a.id)]

    def agency_scope(self, asked: str | None) -> str | None:
        """The agency a list is limited to: the user's own, or the one an administrator picked.

        Asking for an agency outside one's scope is answered as if it did not exist.
        """
        own = self.staff.agency_id
        if not asked:
            return own
        found = find_agency(self.db, asked)
        if found is None or not self.staff.allows(found.id):
            raise NotFound(f"agency {asked!r} does not exist")
        return found.id

    def phone_number(self, text: str, agency_id: str | None) -> str:
        """A searched number as E.164, read with the agency's (or the first agency's) country."""
        country = country_of(self.db, agency_id) or "45"
        return phone.normalise(text, country, field="number")


def local_day(value: str, page: Page, field: str) -> dt.datetime | None:
    """Midnight of a YYYY-MM-DD day in the reader's time zone; None for an empty field."""
    if not value:
        return None
    try:
        day = dt.date.fromisoformat(value)
    except ValueError:
        raise ValidationError(f"{value!r} is not a date (YYYY-MM-DD)", field=field) from None
    start = dt.datetime.combine(day, dt.time(), page.zone)
    try:  # the filters search up to the day after, in UTC: both must be times
        (start + dt.timedelta(days=1)).astimezone(dt.UTC)
        start.astimezone(dt.UTC)
    except OverflowError:
        raise ValidationError(f"{value!r} is too far from today to search", field=field) from None
    return start


def safe_next(value: str | None, default: str = "/staff") -> str:
    """Only paths of the staff UI: never another host (an open redirect)."""
    if value and value.startswith("/staff") and "//" not in value and "\\" not in value:
        return value
    return default


def current_page(request: Request) -> Page:
    state: StaffState = request.app.state.staff
    session = state.sessions.read(request.cookies.get(COOKIE))
    user = get_staff_user(request.app.state.db, session.user_id) if session.user_id else None
    if session.user_id and user is None:  # the user was removed or disabled
        session.sign_out()
    return Page(request, session, user)


PageDep = Annotated[Page, Depends(current_page)]


def signed_in(page: PageDep) -> Page:
    if page.user is None:
        raise LoginRequired(page.here())
    return page


StaffDep = Annotated[Page, Depends(signed_in)]


def administrator(page: StaffDep) -> Page:
    """Pages across agencies (the audit log, tokens): anyone else is told they do not exist."""
    if not page.staff.is_admin:
        raise NotFound("no such page")
    return page


AdminDep = Annotated[Page, Depends(administrator)]


@dataclass(frozen=True)
class Form:
    fields: list[tuple[str, str]]

    def get(self, name: str, default: str = "") -> str:
        return next((v for k, v in self.fields if k == name), default)

    def all(self, name: str) -> list[str]:
        return [v for k, v in self.fields if k == name]


async def posted_form(request: Request, page: PageDep) -> Form:
    """The url-encoded form, after its CSRF token was checked against the session's."""
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        raise CsrfRefused  # no form of ours is this large; refuse before parsing
    try:
        fields = parse_qsl(body.decode("utf-8"), keep_blank_values=True, max_num_fields=5000)
    except (UnicodeDecodeError, ValueError):
        raise CsrfRefused from None
    form = Form(fields)
    if not page.session.csrf_matches(form.get(CSRF_FIELD) or None):
        raise CsrfRefused
    for name, value in fields:
        if "\x00" in value:  # PostgreSQL cannot hold or compare it: refused on every backend
            raise ValidationError(f"{name} contains a NUL character", field=name)
    return form


FormDep = Annotated[Form, Depends(posted_form)]


# Errors as pages ---------------------------------------------------------------------------------
def error_page(request: Request, status: int, message: str) -> Response:
    """An HTML error page in the reader's language (for every path under /staff)."""
    page = current_page(request)
    key = f"error_{status}"
    title = page.t(key)
    if title == key:
        title = page.t("error_other")
    with contextlib.suppress(ValueError):
        if message == HTTPStatus(status).phrase:  # Starlette's own English ("Not Found")
            message = page.t("error_page_missing") if status == 404 else title
    return page.render("error.html", status=status, title=title, message=message)


def login_redirect(request: Request, exc: LoginRequired) -> Response:
    page = current_page(request)
    return page.finish(
        RedirectResponse(f"/staff/login?next={quote(exc.next_path, safe='')}", status_code=303)
    )


def csrf_refused(request: Request) -> Response:
    page = current_page(request)
    return error_page(request, 403, page.t("csrf_refused"))
