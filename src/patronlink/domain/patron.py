"""Patrons (loaners) of an agency."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from enum import StrEnum

from patronlink.domain import phone
from patronlink.domain.errors import ValidationError


class PatronStatus(StrEnum):
    ACTIVE = "active"
    BLOCKED = "blocked"
    EXPIRED = "expired"
    INACTIVE = "inactive"
    PENDING = "pending"


@dataclass(frozen=True, slots=True)
class Patron:
    """A patron. Phone numbers are E.164; ``patron_id`` is unique within ``agency_id``."""

    agency_id: str
    patron_id: str
    name: str
    status: PatronStatus = PatronStatus.ACTIVE
    expiry_date: dt.date | None = None
    email: str | None = None
    phones: tuple[str, ...] = ()
    sms_number: str | None = None
    want_sms: bool = False
    address_lines: tuple[str, ...] = ()
    zip: str | None = None
    birth_date: dt.date | None = None
    home_branch: str | None = None
    source: str | None = None
    external_id: str | None = None
    extra: dict[str, str] = field(default_factory=dict)
    # Phone numbers an import could not read as numbers, kept as the feed wrote them: shown to
    # staff, never texted nor matched on.
    phones_unparsed: tuple[str, ...] = ()

    def numbers(self) -> frozenset[str]:
        """Every number this patron can be reached at or recognised by."""
        found = set(self.phones)
        if self.sms_number:
            found.add(self.sms_number)
        return frozenset(found)

    def is_expired(self, today: dt.date) -> bool:
        return self.status is PatronStatus.EXPIRED or (
            self.expiry_date is not None and self.expiry_date < today
        )


MAX_NAME = 200
MAX_PATRON_ID = 64


def new_patron(
    *,
    agency_id: str,
    country_code: str,
    patron_id: str,
    name: str,
    phones: tuple[str, ...] | list[str] = (),
    sms_number: str | None = None,
    **fields: object,
) -> Patron:
    """Build a patron from raw input: trims, checks lengths, normalises phone numbers to E.164."""
    pid = patron_id.strip()
    if not pid:
        raise ValidationError("patron id is empty", field="patron_id")
    if len(pid) > MAX_PATRON_ID:
        raise ValidationError(
            f"patron id is longer than {MAX_PATRON_ID} characters", field="patron_id"
        )
    clean_name = name.strip()
    if not clean_name:
        raise ValidationError("name is empty", field="name")
    if len(clean_name) > MAX_NAME:
        raise ValidationError(f"name is longer than {MAX_NAME} characters", field="name")
    normalised = tuple(
        dict.fromkeys(
            phone.normalise(p, country_code, field=f"phones[{i}]")
            for i, p in enumerate(phones)
            if p.strip()
        )
    )
    sms = (
        phone.normalise(sms_number, country_code, field="sms_number")
        if sms_number and sms_number.strip()
        else None
    )
    return Patron(
        agency_id=agency_id,
        patron_id=pid,
        name=clean_name,
        phones=normalised,
        sms_number=sms,
        **fields,  # type: ignore[arg-type]
    )
