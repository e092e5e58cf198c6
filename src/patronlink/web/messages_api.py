"""Staff API for outgoing texts: queue one, search, show with attempts, retry, cancel."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from pydantic import BaseModel, Field

from patronlink.domain import phone
from patronlink.domain.delivery import Delivery
from patronlink.domain.idempotency import HEADER as IDEMPOTENCY_HEADER
from patronlink.domain.idempotency import MAX_KEY_LENGTH, parse_key
from patronlink.domain.outbox import MessageStatus
from patronlink.services import outbox
from patronlink.services.agencies import get_agency
from patronlink.services.idempotent_send import queue_sms_once
from patronlink.storage.database import MessageFilter
from patronlink.web.deps import (
    ActorDep,
    AgencyDep,
    ClockDep,
    DbDep,
    ScopeDep,
    SettingsDep,
    refuse_nul_in_url,
)
from patronlink.web.paging import PAGED_HEADERS, set_page_headers
from patronlink.web.schemas import (
    BODY_ERRORS,
    ErrorOut,
    InputModel,
    Offset,
    RowId,
    RowIdPath,
    UtcDateTime,
)

router = APIRouter(
    prefix="/api/v1/agencies/{agency_id}/messages",
    tags=["messages"],
    dependencies=[Depends(refuse_nul_in_url)],
    responses={
        401: {"model": ErrorOut},
        403: {"model": ErrorOut},
        404: {"model": ErrorOut},
        422: {"model": ErrorOut},
    },
)


class MessageIn(InputModel):
    to: str = Field(min_length=1, max_length=40)
    text: str = Field(min_length=1, max_length=1600)
    send_at: UtcDateTime | None = Field(default=None, description="ISO 8601 with offset")


class AttemptOut(BaseModel):
    started_at: dt.datetime
    finished_at: dt.datetime
    driver: str
    outcome: str
    http_status: int | None
    code: str | None
    description: str | None


class MessageOut(BaseModel):
    id: int
    agency_id: str
    to: str
    text: str
    encoding: str
    segments: int
    status: MessageStatus
    origin: str
    send_at: dt.datetime
    next_attempt_at: dt.datetime
    attempts: int
    driver: str | None
    http_status: int | None
    code: str | None
    description: str | None
    gateway_message_id: str | None
    buffered: bool
    created_at: dt.datetime
    sent_at: dt.datetime | None
    delivery: Delivery = Field(
        description="none (no report asked for), pending (report expected), delivered, failed"
    )
    delivery_code: str | None = Field(description="the provider's code in its last report")
    delivery_description: str | None = Field(description="what that code means, and the reason")
    delivered_at: dt.datetime | None = Field(description="when the final report says it ended")

    @classmethod
    def of(cls, row: dict[str, Any]) -> MessageOut:
        return cls(
            id=row["id"],
            agency_id=row["agency_id"],
            to=row["to_number"],
            text=row["text"],
            encoding=row["encoding"],
            segments=row["segments"],
            status=MessageStatus(row["status"]),
            origin=row["origin"],
            send_at=row["send_at"],
            next_attempt_at=row["next_attempt_at"],
            attempts=row["attempts"],
            driver=row["driver"],
            http_status=row["last_http_status"],
            code=row["last_code"],
            description=row["last_description"],
            gateway_message_id=row["gateway_message_id"],
            buffered=bool(row["buffered"]),
            created_at=row["created_at"],
            sent_at=row["sent_at"],
            delivery=Delivery(row["delivery"]),
            delivery_code=row["delivery_code"],
            delivery_description=row["delivery_description"],
            delivered_at=row["delivered_at"],
        )


class MessageDetailOut(MessageOut):
    history: list[AttemptOut]


class RetryFilterIn(InputModel):
    code: str | None = Field(default=None, max_length=32)
    since: UtcDateTime | None = None
    until: UtcDateTime | None = None
    ids: list[RowId] = Field(default_factory=list, max_length=10000)


class MovedOut(BaseModel):
    queued: list[int]


def _detail(db: Any, message_id: int, agency: str) -> MessageDetailOut:
    found = outbox.message_detail(db, message_id, agency)
    base = MessageOut.of(found.message).model_dump()
    return MessageDetailOut(
        **base,
        history=[AttemptOut(**{k: a[k] for k in AttemptOut.model_fields}) for a in found.attempts],
    )


@router.post(
    "",
    status_code=201,
    response_model=MessageDetailOut,
    responses={
        **BODY_ERRORS,
        422: {
            "model": ErrorOut,
            "description": "invalid body, or an Idempotency-Key used before for another request",
        },
    },
)
def queue_message(
    agency: AgencyDep,
    body: MessageIn,
    db: DbDep,
    clock: ClockDep,
    scope: ScopeDep,
    settings: SettingsDep,
    response: Response,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias=IDEMPOTENCY_HEADER,
            description="A key of the client's choosing (a UUID), sent again with a retry of "
            "the same request: the retry gets the first request's message and queues nothing. "
            f"Remembered per token and agency for PATRONLINK_IDEMPOTENCY_KEY_HOURS (24 h); "
            f"1-{MAX_KEY_LENGTH} visible ASCII characters, quoted or bare.",
        ),
    ] = None,
) -> MessageDetailOut:
    if idempotency_key is None:
        message_id = outbox.queue_sms(
            db, agency, body.to, body.text, clock, send_at=body.send_at, origin="staff"
        )
        return _detail(db, message_id, agency)
    queued = queue_sms_once(
        db,
        agency,
        scope.token_id,
        parse_key(idempotency_key),
        body.to,
        body.text,
        clock,
        send_at=body.send_at,
        lifetime=dt.timedelta(hours=settings.idempotency_key_hours),
    )
    if queued.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return _detail(db, queued.message_id, agency)


@router.get("", response_model=list[MessageOut], responses={200: {"headers": PAGED_HEADERS}})
def search_messages(
    agency: AgencyDep,
    db: DbDep,
    request: Request,
    response: Response,
    status: Annotated[list[MessageStatus] | None, Query()] = None,
    to: Annotated[str | None, Query(max_length=40)] = None,
    code: Annotated[str | None, Query(max_length=32)] = None,
    since: UtcDateTime | None = None,
    until: UtcDateTime | None = None,
    delivery: Annotated[
        list[Delivery] | None,
        Query(description="only these delivery states; failed lists the undelivered texts"),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Offset = 0,
) -> list[MessageOut]:
    number = None
    if to:
        country = get_agency(db, agency).country_code
        number = phone.normalise(to, country, field="to")
    f = MessageFilter(
        agency_id=agency,
        statuses=tuple(status or ()),
        to_number=number,
        code=code,
        since=since,
        until=until,
        deliveries=tuple(d.value for d in delivery or ()),
    )
    paged = outbox.page_messages(db, f, limit, offset)
    set_page_headers(request, response, paged)
    return [MessageOut.of(r) for r in paged.items]


@router.get("/{message_id}", response_model=MessageDetailOut)
def get_message(agency: AgencyDep, message_id: RowIdPath, db: DbDep) -> MessageDetailOut:
    return _detail(db, message_id, agency)


@router.post(
    "/{message_id}/retry",
    response_model=MessageDetailOut,
    responses={
        409: {
            "model": ErrorOut,
            "description": "not on the error queue (an error, or a sent text whose delivery "
            "failed)",
        }
    },
)
def retry_message(
    agency: AgencyDep, message_id: RowIdPath, db: DbDep, clock: ClockDep, actor: ActorDep
) -> MessageDetailOut:
    outbox.move_one(db, message_id, agency, MessageStatus.QUEUED, clock, actor=actor)
    return _detail(db, message_id, agency)


@router.post(
    "/{message_id}/cancel",
    response_model=MessageDetailOut,
    responses={409: {"model": ErrorOut, "description": "sent or sending already"}},
)
def cancel_message(
    agency: AgencyDep, message_id: RowIdPath, db: DbDep, clock: ClockDep, actor: ActorDep
) -> MessageDetailOut:
    outbox.move_one(db, message_id, agency, MessageStatus.CANCELLED, clock, actor=actor)
    return _detail(db, message_id, agency)


@router.post("/retry", response_model=MovedOut, responses=BODY_ERRORS)
def retry_errors(
    agency: AgencyDep, body: RetryFilterIn, db: DbDep, clock: ClockDep, actor: ActorDep
) -> MovedOut:
    """Queue again every text on the error queue that matches the filter."""
    f = MessageFilter(
        agency_id=agency,
        statuses=(MessageStatus.ERROR,),
        code=body.code,
        since=body.since,
        until=body.until,
        ids=tuple(body.ids),
    )
    return MovedOut(queued=outbox.move_messages(db, f, MessageStatus.QUEUED, clock, actor=actor))
