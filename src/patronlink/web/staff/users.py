"""Staff users for administrators: list them, create one, disable, enable, reset a password.

Every action goes through the same services as ``patronlink user ...``, so it is audited with
the administrator's name and address, and disabling or a new password ends the user's sessions.
A password the server chose is shown on the one answer that made it and never again.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from starlette.responses import Response

from patronlink.domain.errors import ValidationError
from patronlink.domain.paging import MAX_PAGE
from patronlink.services.staff_users import (
    LANGUAGES,
    create_staff_user,
    disable_staff_user,
    enable_staff_user,
    new_password,
    page_staff_users,
    reset_staff_password,
)
from patronlink.web.staff.pages import AdminDep, Form, FormDep, Page

router = APIRouter(prefix="/staff")
PAGE_SIZE = 100
ADMIN_SCOPE = "*"  # the form's value for "an administrator of every library"


def _listing(
    page: Page,
    offset: int = 0,
    limit: int = PAGE_SIZE,
    *,
    status: int = 200,
    shown_password: tuple[str, str] | None = None,
) -> Response:
    paged = page_staff_users(page.db, limit, offset)
    return page.render(
        "users.html",
        status=status,
        title=page.t("staff_users"),
        users=paged.items,
        pager=page.pager(paged),
        agencies=page.agencies(),
        languages=LANGUAGES,
        admin_scope=ADMIN_SCOPE,
        shown_password=shown_password,
    )


@router.get("/users")
def users(
    page: AdminDep,
    offset: Annotated[int, Query(ge=0, le=2**62)] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = PAGE_SIZE,
) -> Response:
    return _listing(page, offset, limit)


def _password(form: Form) -> tuple[str, bool]:
    """The password the administrator typed, or a new one the server chose (True)."""
    typed = form.get("password")
    return (typed, False) if typed else (new_password(), True)


@router.post("/users")
def create(page: AdminDep, form: FormDep) -> Response:
    scope = form.get("agency")
    if not scope:
        # No default: an administrator sees every library, so it is chosen on purpose.
        raise ValidationError(page.t("user_scope_required"), field="agency")
    password, chosen = _password(form)
    created = create_staff_user(
        page.db,
        form.get("username"),
        password,
        None if scope == ADMIN_SCOPE else scope,
        page.clock,
        language=form.get("language", "da"),
        actor=page.actor,
    )
    if chosen:
        return _listing(page, shown_password=(created.username, password))
    return page.redirect("/staff/users", page.t("user_created", name=created.username))


@router.post("/users/{username}/disable")
def disable(page: AdminDep, _form: FormDep, username: str) -> Response:
    if username == page.staff.username:
        # The last administrator could otherwise lock everyone out of this page.
        raise ValidationError(page.t("user_disable_self"), field="username")
    ended = disable_staff_user(page.db, username, page.clock, actor=page.actor)
    return page.redirect("/staff/users", page.t("user_disabled", name=username, sessions=ended))


@router.post("/users/{username}/enable")
def enable(page: AdminDep, _form: FormDep, username: str) -> Response:
    enable_staff_user(page.db, username, page.clock, actor=page.actor)
    return page.redirect("/staff/users", page.t("user_enabled", name=username))


@router.post("/users/{username}/password")
def reset_password(page: AdminDep, form: FormDep, username: str) -> Response:
    password, chosen = _password(form)
    ended = reset_staff_password(page.db, username, password, page.clock, actor=page.actor)
    if chosen:
        return _listing(page, shown_password=(username, password))
    return page.redirect("/staff/users", page.t("user_password_set", name=username, sessions=ended))
