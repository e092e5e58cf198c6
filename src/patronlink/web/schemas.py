"""Request and response bodies of the staff JSON API."""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any

from fastapi import Path, Query
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, field_validator

from patronlink.domain.circulation import Item, Loan, Reservation
from patronlink.domain.patron import Patron, PatronStatus

# Row ids and offsets are 64-bit in both databases; a larger number would reach the driver and
# fail there (a 500) instead of being refused here.
MAX_ROW_ID = 2**63 - 1
RowIdPath = Annotated[int, Path(ge=1, le=MAX_ROW_ID)]
# Loans, reservations, import runs and tokens have 32-bit ids on PostgreSQL (`integer`): a larger
# id names no row, and PostgreSQL would refuse to compare it ("integer out of range", a 500).
MAX_ID32 = 2**31 - 1
Id32Path = Annotated[int, Path(ge=1, le=MAX_ID32)]
RowId = Annotated[int, Field(ge=1, le=MAX_ROW_ID)]
Offset = Annotated[int, Query(ge=0, le=MAX_ROW_ID)]


def _in_utc_range(value: dt.datetime) -> dt.datetime:
    """Times are stored as UTC: one that cannot be (year 1 at +14:00) is refused with a 422."""
    try:
        value.astimezone(dt.UTC)
    except OverflowError:
        raise ValueError("the time is out of range") from None
    return value


def _iso_text_only(value: Any) -> Any:
    """pydantic reads a bare number (``until=0.5``) as a Unix time; the schema says RFC 3339."""
    if isinstance(value, bool | int | float) or (
        isinstance(value, str) and _NUMBER.fullmatch(value.strip())
    ):
        raise ValueError("a time is written as in RFC 3339, e.g. 2026-11-30T12:00:00+01:00")
    return value


_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")

UtcDateTime = Annotated[dt.datetime, BeforeValidator(_iso_text_only), AfterValidator(_in_utc_range)]


def _refuse_nul(value: Any) -> Any:
    # PostgreSQL text cannot hold NUL; refused here, it is a 422 naming the field, not a 500.
    items = value if isinstance(value, list) else [value]
    if any(isinstance(v, str) and "\x00" in v for v in items):
        raise ValueError("contains a NUL character")
    return value


class InputModel(BaseModel):
    """A JSON request body: unknown fields refused, strings stripped and free of NUL."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    _no_nul = field_validator("*")(_refuse_nul)


class PatronIn(InputModel):
    patron_id: str = Field(min_length=1, max_length=64)
    name: str = Field(min_length=1, max_length=200)
    status: PatronStatus = PatronStatus.ACTIVE
    expiry_date: dt.date | None = None
    email: str | None = Field(default=None, max_length=254)
    phones: list[str] = Field(default_factory=list, max_length=8)
    sms_number: str | None = Field(default=None, max_length=40)
    want_sms: bool = False
    address_lines: list[str] = Field(default_factory=list, max_length=4)
    zip: str | None = Field(default=None, max_length=16)
    birth_date: dt.date | None = None
    home_branch: str | None = Field(default=None, max_length=16)


class PatronOut(BaseModel):
    agency_id: str
    patron_id: str
    name: str
    status: PatronStatus
    expiry_date: dt.date | None
    email: str | None
    phones: list[str]
    sms_number: str | None
    want_sms: bool
    address_lines: list[str]
    zip: str | None
    birth_date: dt.date | None
    home_branch: str | None
    source: str | None
    # Phone numbers an import could not read, as the feed wrote them: never texted.
    phones_unparsed: list[str] = Field(default_factory=list)

    @classmethod
    def of(cls, p: Patron) -> PatronOut:
        return cls(
            agency_id=p.agency_id,
            patron_id=p.patron_id,
            name=p.name,
            status=p.status,
            expiry_date=p.expiry_date,
            email=p.email,
            phones=list(p.phones),
            phones_unparsed=list(p.phones_unparsed),
            sms_number=p.sms_number,
            want_sms=p.want_sms,
            address_lines=list(p.address_lines),
            zip=p.zip,
            birth_date=p.birth_date,
            home_branch=p.home_branch,
            source=p.source,
        )


class ItemIn(InputModel):
    item_number: str = Field(min_length=1, max_length=64)
    title: str = Field(min_length=1, max_length=500)


class ItemOut(BaseModel):
    agency_id: str
    item_number: str
    title: str

    @classmethod
    def of(cls, item: Item) -> ItemOut:
        return cls(agency_id=item.agency_id, item_number=item.item_number, title=item.title)


class CheckoutIn(InputModel):
    patron_id: str = Field(min_length=1, max_length=64)
    item_number: str = Field(min_length=1, max_length=64)
    due_date: dt.date | None = None


class LoanOut(BaseModel):
    id: int | None
    agency_id: str
    patron_id: str
    item_number: str
    title: str | None = None
    loaned_at: dt.datetime
    due_date: dt.date
    renewal_count: int
    returned_at: dt.datetime | None

    @classmethod
    def of(cls, loan: Loan, title: str | None = None) -> LoanOut:
        return cls(
            id=loan.id,
            agency_id=loan.agency_id,
            patron_id=loan.patron_id,
            item_number=loan.item_number,
            title=title,
            loaned_at=loan.loaned_at,
            due_date=loan.due_date,
            renewal_count=loan.renewal_count,
            returned_at=loan.returned_at,
        )


class ReservationIn(InputModel):
    patron_id: str = Field(min_length=1, max_length=64)
    item_number: str = Field(min_length=1, max_length=64)


class ReservationOut(BaseModel):
    id: int | None
    agency_id: str
    patron_id: str
    item_number: str
    created_at: dt.datetime | None

    @classmethod
    def of(cls, r: Reservation) -> ReservationOut:
        return cls(
            id=r.id,
            agency_id=r.agency_id,
            patron_id=r.patron_id,
            item_number=r.item_number,
            created_at=r.created_at,
        )


class AgencyOut(BaseModel):
    id: str
    name: str
    timezone: str
    language: str
    country_code: str
    branches: list[dict[str, str]]


class ErrorOut(BaseModel):
    error: str
    fields: list[dict[str, str]] | None = None


# What any route that reads a JSON body may also answer, before its own validation runs: FastAPI
# refuses a body that is not UTF-8 with 400, the body limit (web/limits.py) a large one with 413.
BODY_ERRORS: dict[int | str, dict[str, object]] = {
    400: {"model": ErrorOut, "description": "the body could not be read (not UTF-8)"},
    413: {"model": ErrorOut, "description": "the body is larger than 1 MiB"},
}
