"""The error queue (filter, retry, cancel, retry of the selected) and the message search."""

from __future__ import annotations

import datetime as dt
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Query
from starlette.responses import Response

from patronlink.domain.delivery import Delivery
from patronlink.domain.outbox import MessageStatus
from patronlink.domain.paging import MAX_PAGE
from patronlink.services import outbox
from patronlink.storage.database import MessageFilter
from patronlink.web.schemas import MAX_ROW_ID, RowIdPath
from patronlink.web.staff.pages import FormDep, Page, StaffDep, local_day, safe_next

router = APIRouter(prefix="/staff")
PAGE_SIZE = 100
Text = Annotated[str, Query(max_length=40)]


Offset = Annotated[int, Query(ge=0, le=2**62)]
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE)]


def _error_filter(page: Page, agency: str, since: str, until: str, code: str) -> MessageFilter:
    """The error queue narrowed as the page's filter form says (the same for list and retry)."""
    until_day = local_day(until, page, "until")
    return MessageFilter(
        agency_id=page.agency_scope(agency),
        statuses=(MessageStatus.ERROR,),
        code=code.strip() or None,
        since=local_day(since, page, "since"),
        until=until_day + dt.timedelta(days=1) if until_day else None,  # the day is included
    )


@router.get("/errors")
def error_queue(
    page: StaffDep,
    agency: Text = "",
    since: Text = "",
    until: Text = "",
    code: Text = "",
    offset: Offset = 0,
    limit: Limit = PAGE_SIZE,
) -> Response:
    f = _error_filter(page, agency, since, until, code)
    paged = outbox.page_messages(page.db, f, limit, offset)
    attempts = outbox.attempts_of(page.db, [r["id"] for r in paged.items])
    filters = {"agency": f.agency_id or "", "since": since, "until": until, "code": code}
    # Sent texts that the operator did not deliver (a failed delivery report), with its reason.
    undelivered = outbox.list_messages(
        page.db,
        MessageFilter(
            agency_id=f.agency_id,
            statuses=(MessageStatus.SENT,),
            deliveries=(Delivery.FAILED.value,),
            since=f.since,
            until=f.until,
        ),
        PAGE_SIZE,
        0,
    )
    return page.render(
        "errors.html",
        title=page.t("error_queue"),
        rows=paged.items,
        pager=page.pager(paged),
        undelivered=undelivered,
        attempts=attempts,
        agencies=page.agencies(),
        filters=filters,
        retry_all_url="/staff/errors/retry-all?" + urlencode(filters),
    )


@router.get("/errors/retry-all")
def confirm_retry_all(
    page: StaffDep, agency: Text = "", since: Text = "", until: Text = "", code: Text = ""
) -> Response:
    """The confirmation before "retry all N that match this filter": N counted now."""
    f = _error_filter(page, agency, since, until, code)
    total = outbox.page_messages(page.db, f, 1, 0).total
    filters = {"agency": f.agency_id or "", "since": since, "until": until, "code": code}
    return page.render(
        "retry_all.html",
        title=page.t("retry_all_title"),
        total=total,
        filters=filters,
        back="/staff/errors?" + urlencode(filters),
    )


@router.post("/errors/retry-all")
def retry_all(page: StaffDep, form: FormDep) -> Response:
    f = _error_filter(
        page, form.get("agency"), form.get("since"), form.get("until"), form.get("code")
    )
    moved = outbox.move_messages(page.db, f, MessageStatus.QUEUED, page.clock, actor=page.actor)
    return page.redirect("/staff/errors", page.t("queued_again", count=len(moved)))


@router.post("/errors/retry")
def retry_selected(page: StaffDep, form: FormDep) -> Response:
    # Only ids a row can have: ASCII digits ("²" is a digit to str.isdigit) within 64 bits.
    ids = tuple(
        int(v) for v in form.all("ids") if v.isascii() and v.isdigit() and int(v) <= MAX_ROW_ID
    )
    back = safe_next(form.get("next"), "/staff/errors")
    if not ids:
        return page.redirect(back, page.t("none_selected"))
    f = MessageFilter(agency_id=page.staff.agency_id, statuses=(MessageStatus.ERROR,), ids=ids)
    moved = outbox.move_messages(page.db, f, MessageStatus.QUEUED, page.clock, actor=page.actor)
    return page.redirect(back, page.t("queued_again", count=len(moved)))


@router.get("/messages")
def search_messages(
    page: StaffDep,
    agency: Text = "",
    number: Text = "",
    status: Text = "",
    offset: Offset = 0,
    limit: Limit = PAGE_SIZE,
) -> Response:
    scope = page.agency_scope(agency)
    statuses = (MessageStatus(status),) if status in set(MessageStatus) else ()
    f = MessageFilter(
        agency_id=scope,
        statuses=statuses,
        to_number=page.phone_number(number, scope) if number.strip() else None,
    )
    paged = outbox.page_messages(page.db, f, limit, offset)
    return page.render(
        "messages.html",
        title=page.t("messages"),
        rows=paged.items,
        pager=page.pager(paged),
        agencies=page.agencies(),
        statuses=list(MessageStatus),
        filters={"agency": scope or "", "number": number, "status": status},
    )


@router.get("/messages/{message_id}")
def show_message(page: StaffDep, message_id: RowIdPath) -> Response:
    found = outbox.message_detail(page.db, message_id, page.staff.agency_id)
    return page.render(
        "message.html",
        title=page.t("message_n", id=message_id),
        message=found.message,
        history=found.attempts,
    )


@router.post("/messages/{message_id}/retry")
def retry_message(page: StaffDep, form: FormDep, message_id: RowIdPath) -> Response:
    outbox.move_one(
        page.db,
        message_id,
        page.staff.agency_id,
        MessageStatus.QUEUED,
        page.clock,
        actor=page.actor,
    )
    back = safe_next(form.get("next"), f"/staff/messages/{message_id}")
    return page.redirect(back, page.t("queued_again", count=1))


@router.post("/messages/{message_id}/cancel")
def cancel_message(page: StaffDep, form: FormDep, message_id: RowIdPath) -> Response:
    outbox.move_one(
        page.db,
        message_id,
        page.staff.agency_id,
        MessageStatus.CANCELLED,
        page.clock,
        actor=page.actor,
    )
    back = safe_next(form.get("next"), f"/staff/messages/{message_id}")
    return page.redirect(back, page.t("cancelled_n", id=message_id))  # or dismissed, if sent
