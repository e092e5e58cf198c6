"""Signing in and out, and the language switch."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from starlette.responses import Response

from patronlink.services.staff_users import check_login, remember_language
from patronlink.services.throttle import Refused
from patronlink.web.staff.i18n import language_of
from patronlink.web.staff.pages import FormDep, PageDep, safe_next

router = APIRouter(prefix="/staff")


@router.get("/login")
def login_form(page: PageDep, next_path: Annotated[str, Query(alias="next")] = "") -> Response:
    if page.user is not None:
        return page.redirect(safe_next(next_path))
    return page.render("login.html", title=page.t("log_in"), next=safe_next(next_path), failed="")


@router.post("/login")
def login(page: PageDep, form: FormDep) -> Response:
    username = form.get("username").strip()[:64]
    next_path = safe_next(form.get("next"))
    throttle = page.state.throttle
    client = page.request.client.host if page.request.client else "unknown"
    # Counted before the password is checked (services/throttle.py): per user at this
    # address, per user from anywhere (slower) and per address (slower).
    ticket = throttle.reserve(username, client)
    if isinstance(ticket, Refused):
        response = page.render(
            "login.html",
            status=429,
            title=page.t("log_in"),
            next=next_path,
            failed=page.t("login_throttled"),
        )
        response.headers["Retry-After"] = str(ticket.retry_after)
        return response
    user = check_login(page.db, username, form.get("password"))
    throttle.settle(ticket, succeeded=user is not None)
    if user is None:
        return page.render(
            "login.html",
            status=401,
            title=page.t("log_in"),
            next=next_path,
            failed=page.t("login_failed"),
        )
    page.session.sign_in(user.id)
    if page.session.language is None:
        page.session.language = user.language
    return page.redirect(next_path)


@router.post("/logout")
def logout(page: PageDep, _form: FormDep) -> Response:
    page.session.sign_out()
    page.user = None
    return page.redirect("/staff/login", page.t("logged_out"))


@router.post("/language")
def switch_language(page: PageDep, form: FormDep) -> Response:
    """Remembered in the session and, for a signed-in user, as their preference."""
    chosen = language_of(form.get("language"))
    if chosen is not None:
        page.session.language = chosen
        if page.user is not None:
            remember_language(page.db, page.user.id, chosen)
    return page.redirect(safe_next(form.get("next")))
