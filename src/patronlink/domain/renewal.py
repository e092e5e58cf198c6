"""Renewal decisions, after the Danish FBS renewal statuses.

``decide_renewal`` is a pure function of the loan, its patron, the reservations on the item, the
agency's policy and today's date. The refusal reasons are a closed set; their reply texts live with
the SMS replies, not here.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from patronlink.domain.circulation import Loan, Reservation
from patronlink.domain.errors import ValidationError
from patronlink.domain.patron import Patron, PatronStatus


class RefusalReason(StrEnum):
    RESERVED = "deniedReserved"
    MAX_RENEWALS_REACHED = "deniedMaxRenewalsReached"
    LOANER_IS_BLOCKED = "deniedLoanerIsBlocked"
    LOANER_EXPIRED = "deniedLoanerExpired"
    TOO_SOON = "deniedTooSoon"
    MATERIAL_NOT_FOUND = "deniedMaterialIsNotFound"
    OTHER = "deniedOtherReason"


@dataclass(frozen=True, slots=True)
class RenewalPolicy:
    """How an agency renews: each renewal lends the item ``loan_days`` from today.

    ``renew_not_before_days``: when set, a loan can only be renewed when its due date is at most
    that many days away.
    """

    loan_days: int = 30
    max_renewals: int = 3
    renew_not_before_days: int | None = None

    def __post_init__(self) -> None:
        if self.loan_days < 1:
            raise ValidationError("loan_days must be at least 1", field="loan_days")
        if self.max_renewals < 0:
            raise ValidationError("max_renewals must not be negative", field="max_renewals")
        if self.renew_not_before_days is not None and self.renew_not_before_days < 0:
            raise ValidationError(
                "renew_not_before_days must not be negative", field="renew_not_before_days"
            )


@dataclass(frozen=True, slots=True)
class Renewed:
    new_due_date: dt.date


@dataclass(frozen=True, slots=True)
class Refused:
    reason: RefusalReason


RenewalDecision = Renewed | Refused


def decide_renewal(
    loan: Loan | None,
    patron: Patron,
    reservations: Iterable[Reservation],
    policy: RenewalPolicy,
    today: dt.date,
) -> RenewalDecision:
    """Decide whether ``patron`` may renew ``loan`` today; the first rule that refuses wins."""
    if loan is None or not loan.is_active or loan.patron_id != patron.patron_id:
        return Refused(RefusalReason.MATERIAL_NOT_FOUND)
    if patron.status is PatronStatus.BLOCKED:
        return Refused(RefusalReason.LOANER_IS_BLOCKED)
    if patron.is_expired(today):
        return Refused(RefusalReason.LOANER_EXPIRED)
    if patron.status is not PatronStatus.ACTIVE:
        return Refused(RefusalReason.OTHER)
    if any(
        r.item_number == loan.item_number and r.patron_id != patron.patron_id for r in reservations
    ):
        return Refused(RefusalReason.RESERVED)
    if loan.renewal_count >= policy.max_renewals:
        return Refused(RefusalReason.MAX_RENEWALS_REACHED)
    if (
        policy.renew_not_before_days is not None
        and (loan.due_date - today).days > policy.renew_not_before_days
    ):
        return Refused(RefusalReason.TOO_SOON)
    new_due = today + dt.timedelta(days=policy.loan_days)
    if new_due <= loan.due_date:
        # Renewing would not lend the item any longer: nothing to gain, so not yet.
        return Refused(RefusalReason.TOO_SOON)
    return Renewed(new_due)
