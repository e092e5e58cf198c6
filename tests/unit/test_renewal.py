"""Renewal decisions: one row per outcome, the precedence of the rules, and a property."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from patronlink.domain.circulation import Loan, Reservation
from patronlink.domain.errors import ValidationError
from patronlink.domain.patron import Patron, PatronStatus
from patronlink.domain.renewal import (
    RefusalReason,
    Refused,
    RenewalDecision,
    RenewalPolicy,
    Renewed,
    decide_renewal,
)

AGENCY = "DK-761500"
TODAY = dt.date(2026, 11, 23)
LOANED_AT = dt.datetime(2026, 11, 1, 12, 0, tzinfo=dt.UTC)
ITEM = "5010000123"
POLICY = RenewalPolicy(loan_days=30, max_renewals=3)


def make_patron(**changes: Any) -> Patron:
    patron = Patron(agency_id=AGENCY, patron_id="P1", name="Karen Blixen")
    return dataclasses.replace(patron, **changes)


def make_loan(**changes: Any) -> Loan:
    loan = Loan(
        agency_id=AGENCY,
        patron_id="P1",
        item_number=ITEM,
        loaned_at=LOANED_AT,
        due_date=TODAY + dt.timedelta(days=5),
    )
    return dataclasses.replace(loan, **changes)


def reservation(patron_id: str, item_number: str = ITEM) -> Reservation:
    return Reservation(agency_id=AGENCY, item_number=item_number, patron_id=patron_id)


@dataclasses.dataclass(frozen=True)
class Case:
    loan: Loan | None
    expected: RenewalDecision
    patron: Patron = dataclasses.field(default_factory=make_patron)
    reservations: tuple[Reservation, ...] = ()
    policy: RenewalPolicy = POLICY


CASES = {
    "renewed: new due date is today + loan_days": Case(
        loan=make_loan(), expected=Renewed(TODAY + dt.timedelta(days=30))
    ),
    "renewed: overdue loan": Case(
        loan=make_loan(due_date=TODAY - dt.timedelta(days=3)),
        expected=Renewed(TODAY + dt.timedelta(days=30)),
    ),
    "renewed: one renewal left": Case(
        loan=make_loan(renewal_count=2), expected=Renewed(TODAY + dt.timedelta(days=30))
    ),
    "renewed: patron expires today, not before": Case(
        loan=make_loan(),
        patron=make_patron(expiry_date=TODAY),
        expected=Renewed(TODAY + dt.timedelta(days=30)),
    ),
    "renewed: due date exactly renew_not_before_days away": Case(
        loan=make_loan(due_date=TODAY + dt.timedelta(days=7)),
        policy=RenewalPolicy(loan_days=30, max_renewals=3, renew_not_before_days=7),
        expected=Renewed(TODAY + dt.timedelta(days=30)),
    ),
    "renewed: reservation on another item": Case(
        loan=make_loan(),
        reservations=(reservation("P2", item_number="9999"),),
        expected=Renewed(TODAY + dt.timedelta(days=30)),
    ),
    "deniedReserved: another patron reserved the item": Case(
        loan=make_loan(),
        reservations=(reservation("P2"),),
        expected=Refused(RefusalReason.RESERVED),
    ),
    "deniedMaxRenewalsReached": Case(
        loan=make_loan(renewal_count=3), expected=Refused(RefusalReason.MAX_RENEWALS_REACHED)
    ),
    "deniedMaxRenewalsReached: max_renewals 0": Case(
        loan=make_loan(),
        policy=RenewalPolicy(loan_days=30, max_renewals=0),
        expected=Refused(RefusalReason.MAX_RENEWALS_REACHED),
    ),
    "deniedLoanerIsBlocked": Case(
        loan=make_loan(),
        patron=make_patron(status=PatronStatus.BLOCKED),
        expected=Refused(RefusalReason.LOANER_IS_BLOCKED),
    ),
    "deniedLoanerExpired: by status": Case(
        loan=make_loan(),
        patron=make_patron(status=PatronStatus.EXPIRED),
        expected=Refused(RefusalReason.LOANER_EXPIRED),
    ),
    "deniedLoanerExpired: expiry date before today": Case(
        loan=make_loan(),
        patron=make_patron(expiry_date=TODAY - dt.timedelta(days=1)),
        expected=Refused(RefusalReason.LOANER_EXPIRED),
    ),
    "deniedTooSoon: due date further away than renew_not_before_days": Case(
        loan=make_loan(due_date=TODAY + dt.timedelta(days=8)),
        policy=RenewalPolicy(loan_days=30, max_renewals=3, renew_not_before_days=7),
        expected=Refused(RefusalReason.TOO_SOON),
    ),
    "deniedTooSoon: new due date equal to the current one": Case(
        loan=make_loan(due_date=TODAY + dt.timedelta(days=30)),
        expected=Refused(RefusalReason.TOO_SOON),
    ),
    "deniedTooSoon: new due date before the current one": Case(
        loan=make_loan(due_date=TODAY + dt.timedelta(days=45)),
        expected=Refused(RefusalReason.TOO_SOON),
    ),
    "deniedMaterialIsNotFound: no loan": Case(
        loan=None, expected=Refused(RefusalReason.MATERIAL_NOT_FOUND)
    ),
    "deniedMaterialIsNotFound: returned loan": Case(
        loan=make_loan(returned_at=dt.datetime(2026, 11, 20, 9, 0, tzinfo=dt.UTC)),
        expected=Refused(RefusalReason.MATERIAL_NOT_FOUND),
    ),
    "deniedMaterialIsNotFound: loan of another patron": Case(
        loan=make_loan(patron_id="P2"), expected=Refused(RefusalReason.MATERIAL_NOT_FOUND)
    ),
    "deniedOtherReason: inactive patron": Case(
        loan=make_loan(),
        patron=make_patron(status=PatronStatus.INACTIVE),
        expected=Refused(RefusalReason.OTHER),
    ),
    "deniedOtherReason: pending patron": Case(
        loan=make_loan(),
        patron=make_patron(status=PatronStatus.PENDING),
        expected=Refused(RefusalReason.OTHER),
    ),
    # Precedence: the first rule that refuses wins.
    "precedence: blocked and reserved -> blocked": Case(
        loan=make_loan(),
        patron=make_patron(status=PatronStatus.BLOCKED),
        reservations=(reservation("P2"),),
        expected=Refused(RefusalReason.LOANER_IS_BLOCKED),
    ),
    "precedence: blocked and expired -> blocked": Case(
        loan=make_loan(),
        patron=make_patron(status=PatronStatus.BLOCKED, expiry_date=TODAY - dt.timedelta(days=1)),
        expected=Refused(RefusalReason.LOANER_IS_BLOCKED),
    ),
    "precedence: reserved and max renewals -> reserved": Case(
        loan=make_loan(renewal_count=3),
        reservations=(reservation("P2"),),
        expected=Refused(RefusalReason.RESERVED),
    ),
    "precedence: not found before blocked": Case(
        loan=None,
        patron=make_patron(status=PatronStatus.BLOCKED),
        expected=Refused(RefusalReason.MATERIAL_NOT_FOUND),
    ),
}


@pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
def test_decide_renewal(case: Case) -> None:
    decision = decide_renewal(case.loan, case.patron, case.reservations, case.policy, TODAY)
    assert decision == case.expected


def test_every_refusal_reason_has_a_row() -> None:
    reasons = {c.expected.reason for c in CASES.values() if isinstance(c.expected, Refused)}
    assert reasons == set(RefusalReason)


def test_own_reservation_does_not_block() -> None:
    decision = decide_renewal(make_loan(), make_patron(), [reservation("P1")], POLICY, TODAY)
    assert decision == Renewed(TODAY + dt.timedelta(days=30))


def test_reservations_may_be_a_one_shot_iterable() -> None:
    decision = decide_renewal(make_loan(), make_patron(), iter([reservation("P2")]), POLICY, TODAY)
    assert decision == Refused(RefusalReason.RESERVED)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"loan_days": 0}, "loan_days"),
        ({"loan_days": -1}, "loan_days"),
        ({"max_renewals": -1}, "max_renewals"),
        ({"renew_not_before_days": -1}, "renew_not_before_days"),
    ],
)
def test_policy_rejects(changes: dict[str, int], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        RenewalPolicy(**changes)
    assert info.value.field == field


def test_policy_accepts_its_limits() -> None:
    policy = RenewalPolicy(loan_days=1, max_renewals=0, renew_not_before_days=0)
    assert (policy.loan_days, policy.max_renewals, policy.renew_not_before_days) == (1, 0, 0)


@given(
    loan_days=st.integers(min_value=1, max_value=400),
    max_renewals=st.integers(min_value=1, max_value=20),
    data=st.data(),
    due_offset=st.integers(min_value=-400, max_value=800),
    expiry_offset=st.none() | st.integers(min_value=0, max_value=3650),
    today=st.dates(min_value=dt.date(2000, 1, 1), max_value=dt.date(2100, 12, 31)),
)
def test_renewed_exactly_when_it_lends_longer(
    loan_days: int,
    max_renewals: int,
    data: st.DataObject,
    due_offset: int,
    expiry_offset: int | None,
    today: dt.date,
) -> None:
    renewal_count = data.draw(st.integers(min_value=0, max_value=max_renewals - 1))
    policy = RenewalPolicy(loan_days=loan_days, max_renewals=max_renewals)
    patron = make_patron(
        expiry_date=None if expiry_offset is None else today + dt.timedelta(days=expiry_offset)
    )
    due_date = today + dt.timedelta(days=due_offset)
    loan = make_loan(due_date=due_date, renewal_count=renewal_count)

    decision = decide_renewal(loan, patron, [], policy, today)

    new_due = today + dt.timedelta(days=loan_days)
    if new_due > due_date:
        assert decision == Renewed(new_due)
    else:
        assert decision == Refused(RefusalReason.TOO_SOON)
