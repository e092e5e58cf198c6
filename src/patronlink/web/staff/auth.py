"""Signing in and out, and the language switch."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from starlette.responses import Response

from patronlink.services.staff_users import check_login, remember_language
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
    # Throttled per user name (guessing one account's password) and per address (spraying).
    keys = (f"user:{username.lower()}", f"addr:{client}")
    if any(throttle.blocked(k) for k in keys):
        return page.render(
            "login.html",
            status=429,
            title=page.t("log_in"),
            next=next_path,
            failed=page.t("login_throttled"),
        )
    user = check_login(page.db, username, form.get("password"))
    if user is None:
        for k in keys:
            throttle.failed(k)
        return page.render(
            "login.html",
            status=401,
            title=page.t("log_in"),
            next=next_path,
            failed=page.t("login_failed"),
        )
    for k in keys:
        throttle.succeeded(k)
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
