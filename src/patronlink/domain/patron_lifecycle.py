"""A patron's life after registration: which staff action may follow which status, and what
anonymisation leaves of a person.

The moves are one table (``MOVES``): an action not allowed from the patron's status is a
``Conflict`` that names both, never a silent no-op.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from typing import Any

from patronlink.domain.errors import Conflict, ValidationError
from patronlink.domain.patron import Patron, PatronStatus, new_patron

MAX_REASON = 500
ANONYMISED_NAME = "(anonymised)"


class LifecycleAction(enum.StrEnum):
    APPROVE = "approve"
    REJECT = "reject"  # a pending self-registration is removed
    BLOCK = "block"
    UNBLOCK = "unblock"
    DEACTIVATE = "deactivate"


S = PatronStatus
# action: (statuses it may start from, the status it leads to; None: the patron is removed)
MOVES: dict[LifecycleAction, tuple[frozenset[PatronStatus], PatronStatus | None]] = {
    LifecycleAction.APPROVE: (frozenset({S.PENDING}), S.ACTIVE),
    LifecycleAction.REJECT: (frozenset({S.PENDING}), None),
    LifecycleAction.BLOCK: (frozenset({S.ACTIVE, S.EXPIRED, S.INACTIVE}), S.BLOCKED),
    LifecycleAction.UNBLOCK: (frozenset({S.BLOCKED}), S.ACTIVE),
    LifecycleAction.DEACTIVATE: (
        frozenset({S.ACTIVE, S.BLOCKED, S.EXPIRED, S.PENDING}),
        S.INACTIVE,
    ),
}


def next_status(current: PatronStatus, action: LifecycleAction) -> PatronStatus | None:
    """The status after ``action``; ``Conflict`` when ``current`` does not allow it."""
    allowed, after = MOVES[action]
    if current not in allowed:
        raise Conflict(f"a patron who is {current.value} cannot be given {action.value!r}")
    return after


def block_reason(reason: str | None) -> str:
    """A block needs a reason that staff can read later (it is shown and audited)."""
    text = (reason or "").strip()
    if not text:
        raise ValidationError("a reason is required to block a patron", field="reason")
    if len(text) > MAX_REASON:
        raise ValidationError(f"the reason is longer than {MAX_REASON} characters", field="reason")
    return text


# The contact fields staff may edit; the patron id, status and source are changed otherwise.
EDITABLE = frozenset(
    {
        "name",
        "email",
        "phones",
        "sms_number",
        "want_sms",
        "address_lines",
        "zip",
        "birth_date",
        "home_branch",
        "expiry_date",
    }
)


def edited(patron: Patron, country_code: str, changes: Mapping[str, Any]) -> Patron:
    """The patron with ``changes`` applied and validated as at registration (phones to E.164)."""
    unknown = set(changes) - EDITABLE
    if unknown:
        raise ValidationError(f"{sorted(unknown)[0]} cannot be edited", field=sorted(unknown)[0])
    values = {f.name: getattr(patron, f.name) for f in dataclasses.fields(patron)}
    values.update(changes)
    values["phones"] = tuple(values["phones"] or ())
    values["address_lines"] = tuple(values["address_lines"] or ())
    return new_patron(country_code=country_code, **values)


def anonymised(patron: Patron, anonymous_id: str) -> Patron:
    """What is kept of a person erased on request (GDPR art. 17): nothing that names them.

    The row stays so that loans keep their history; it no longer says whose they were.
    """
    return Patron(
        agency_id=patron.agency_id,
        patron_id=anonymous_id,
        name=ANONYMISED_NAME,
        status=PatronStatus.INACTIVE,
    )
