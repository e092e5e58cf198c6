"""``GET /api/v1/audit``: who did what, when, from where, to which object; newest first."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from pydantic import BaseModel

from patronlink.domain.audit import AuditAction, ObjectKind
from patronlink.services import audit
from patronlink.services.agencies import find_agency
from patronlink.storage.database import AuditEntry, AuditFilter
from patronlink.web.deps import DbDep, ScopeDep, refuse_nul_in_url
from patronlink.web.paging import PAGED_HEADERS, Limit, set_page_headers
from patronlink.web.schemas import ErrorOut, Offset, UtcDateTime

router = APIRouter(
    prefix="/api/v1/audit",
    tags=["audit"],
    dependencies=[Depends(refuse_nul_in_url)],
    responses={
        401: {"model": ErrorOut},
        403: {"model": ErrorOut},
        404: {"model": ErrorOut, "description": "no such agency"},
        422: {"model": ErrorOut},
    },
)


class AuditEntryOut(BaseModel):
    id: int
    at: dt.datetime
    actor_kind: str
    actor: str
    source: str | None
    action: str
    agency_id: str | None
    object_kind: str
    object_id: str
    details: dict[str, Any]

    @classmethod
    def of(cls, e: AuditEntry) -> AuditEntryOut:
        return cls(**{name: getattr(e, name) for name in cls.model_fields})


@router.get(
    "",
    response_model=list[AuditEntryOut],
    responses={200: {"headers": PAGED_HEADERS}},
)
def list_audit(
    request: Request,
    response: Response,
    db: DbDep,
    scope: ScopeDep,
    agency: Annotated[str | None, Query(max_length=32, description="ISIL")] = None,
    actor: Annotated[str | None, Query(max_length=200)] = None,
    action: Annotated[list[AuditAction] | None, Query()] = None,
    object_kind: ObjectKind | None = None,
    object_id: Annotated[str | None, Query(max_length=128)] = None,
    since: UtcDateTime | None = None,
    until: UtcDateTime | None = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> list[AuditEntryOut]:
    """A token of one agency reads that agency's entries only; a token for all reads every one."""
    agency_id = agency
    if agency:
        found = find_agency(db, agency)
        if found is None:
            if scope.agency_id is not None:
                raise HTTPException(403, "this token is not valid for that agency")
            raise HTTPException(404, f"agency {agency!r} does not exist")
        agency_id = found.id
    if scope.agency_id is not None:
        if agency_id is not None and agency_id != scope.agency_id:
            raise HTTPException(403, "this token is not valid for that agency")
        agency_id = scope.agency_id
    f = AuditFilter(
        agency_id=agency_id,
        actor=actor,
        actions=tuple(action or ()),
        object_kind=object_kind,
        object_id=object_id,
        since=since,
        until=until,
    )
    paged = audit.search(db, f, limit, offset)
    set_page_headers(request, response, paged)
    return [AuditEntryOut.of(e) for e in paged.items]
