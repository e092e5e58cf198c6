"""The audit log for administrators: who did what, when, from where, to which object."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Query
from starlette.responses import Response

from patronlink.domain.audit import AuditAction, ObjectKind
from patronlink.domain.paging import MAX_PAGE
from patronlink.services import audit
from patronlink.storage.database import AuditFilter
from patronlink.web.staff.pages import AdminDep, local_day

router = APIRouter(prefix="/staff")
PAGE_SIZE = 100
Text = Annotated[str, Query(max_length=200)]


@router.get("/audit")
def audit_log(
    page: AdminDep,
    agency: Text = "",
    action: Text = "",
    actor: Text = "",
    object_kind: Text = "",
    object_id: Text = "",
    since: Text = "",
    until: Text = "",
    offset: Annotated[int, Query(ge=0, le=2**62)] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = PAGE_SIZE,
) -> Response:
    scope = page.agency_scope(agency)
    until_day = local_day(until, page, "until")
    f = AuditFilter(
        agency_id=scope,
        actor=actor.strip() or None,
        actions=(AuditAction(action),) if action in set(AuditAction) else (),
        object_kind=ObjectKind(object_kind) if object_kind in set(ObjectKind) else None,
        object_id=object_id.strip() or None,
        since=local_day(since, page, "since"),
        until=until_day + dt.timedelta(days=1) if until_day else None,  # the day is included
    )
    paged = audit.search(page.db, f, limit, offset)
    return page.render(
        "audit.html",
        title=page.t("audit_log"),
        entries=paged.items,
        pager=page.pager(paged),
        agencies=page.agencies(),
        actions=list(AuditAction),
        kinds=list(ObjectKind),
        filters={
            "agency": scope or "",
            "action": action,
            "actor": actor,
            "object_kind": object_kind,
            "object_id": object_id,
            "since": since,
            "until": until,
        },
    )
