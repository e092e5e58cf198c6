"""Staff API tokens for administrators: list with state and last use, create, revoke."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Query
from starlette.responses import Response

from patronlink.domain.errors import ValidationError
from patronlink.domain.paging import MAX_PAGE
from patronlink.services.access import create_token, page_tokens, revoke_token
from patronlink.web.schemas import Id32Path
from patronlink.web.staff.pages import AdminDep, FormDep, Page

router = APIRouter(prefix="/staff")
PAGE_SIZE = 100


def _tokens_page(
    page: Page, new_token: str | None, offset: int = 0, limit: int = PAGE_SIZE
) -> Response:
    paged = page_tokens(page.db, limit=limit, offset=offset)
    return page.render(
        "tokens.html",
        title=page.t("tokens"),
        tokens=paged.items,
        pager=page.pager(paged),
        now=page.clock(),
        agencies=page.agencies(),
        new_token=new_token,
    )


@router.get("/tokens")
def tokens(
    page: AdminDep,
    offset: Annotated[int, Query(ge=0, le=2**62)] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = PAGE_SIZE,
) -> Response:
    return _tokens_page(page, None, offset, limit)


@router.post("/tokens")
def create(page: AdminDep, form: FormDep) -> Response:
    """The new token is shown on this one answer and never again (it is stored hashed)."""
    name = form.get("name").strip()
    if not name:
        raise ValidationError(page.t("token_name_required"), field="name")
    expires = form.get("expires").strip()
    expires_at = None
    if expires:
        try:
            day = dt.date.fromisoformat(expires)
        except ValueError:
            raise ValidationError(
                f"{expires!r} is not a date (YYYY-MM-DD)", field="expires"
            ) from None
        # The end of that day where the administrator is.
        expires_at = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), page.zone)
    token = create_token(
        page.db,
        name,
        form.get("agency") or None,
        page.clock,
        actor=page.actor,
        expires_at=expires_at,
    )
    return _tokens_page(page, token)


@router.post("/tokens/{token_id}/revoke")
def revoke(page: AdminDep, _form: FormDep, token_id: Id32Path) -> Response:
    found = revoke_token(page.db, token_id, page.clock, actor=page.actor)
    return page.redirect("/staff/tokens", page.t("token_revoked", name=found.name))
