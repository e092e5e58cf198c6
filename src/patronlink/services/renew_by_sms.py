"""Renewal by SMS: a provider relays "<prefix> forny alle" and every loan of every patron sharing
the sender's number is renewed where the rules allow; replies go out through the outbox.

Everything one request decides (renewals, reply texts, the log row) is committed in one
transaction, so a crash leaves either all of it or none. The same agency, number and text within
``DUPLICATE_WINDOW`` is processed once: providers retry webhooks.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from patronlink.domain import phone
from patronlink.domain.agency import Agency
from patronlink.domain.circulation import Loan
from patronlink.domain.errors import (
    InvalidPhoneNumber,
    NotFound,
    PermissionDenied,
    Unauthenticated,
)
from patronlink.domain.patron import Patron
from patronlink.domain.renewal import (
    RefusalReason,
    Refused,
    RenewalPolicy,
    Renewed,
    decide_renewal,
)
from patronlink.domain.replies import DEFAULT_PREFIX, LoanLine, Texts, renewal_report
from patronlink.domain.sms_command import NotUnderstood, RenewAll, RenewItem, parse
from patronlink.services.circulation import renewal_policy
from patronlink.services.clock import Clock
from patronlink.services.outbox import prepare
from patronlink.services.secrets import VerifiedPasswords
from patronlink.storage.database import Database, Repositories

DUPLICATE_WINDOW = dt.timedelta(seconds=120)


@dataclass(frozen=True)
class InboundRequest:
    agency: str
    user: str
    password: str
    shortcode: str
    countrycode: str
    number: str
    text: str


@dataclass
class InboundResult:
    outcome: str
    patrons: list[str] = field(default_factory=list)
    renewed: int = 0
    refused: int = 0
    replies: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class InboundAgency:
    """The agency a request is for, with its settings as read when the request came in."""

    agency: Agency
    settings: dict[str, Any]


def authenticate(
    db: Database, request: InboundRequest, passwords: VerifiedPasswords
) -> InboundAgency:
    """The agency, if it exists, has renewal by SMS switched on, and the credentials are right."""
    with db.transaction() as repos:
        found = repos.agencies.get_with_settings(request.agency, branches=False)
        if found is None:
            raise NotFound(f"agency {request.agency!r} does not exist")
        agency, settings = found
        enabled = settings.get("renewal", {}).get("sms_enabled", False)
        stored = repos.integration_users.password_hash(agency.id, request.user)
    # argon2 runs outside the transaction: it must not hold SQLite's write lock.
    if not passwords.verify(stored, request.password):
        raise Unauthenticated("wrong user or password")
    if not enabled:
        raise PermissionDenied(f"renewal by SMS is not enabled for {agency.id}")
    return InboundAgency(agency, settings)


def handle_inbound(
    db: Database, found: InboundAgency, request: InboundRequest, clock: Clock
) -> InboundResult:
    now = clock()
    agency = found.agency
    body = request.text.strip()
    try:
        number = phone.normalise(
            request.number, request.countrycode.strip().lstrip("+") or agency.country_code
        )
    except (InvalidPhoneNumber, ValueError):
        number = None
    with db.transaction() as repos:
        key = number or request.number.strip()[:40]
        repos.inbound.serialise_number(agency.id, key)
        if repos.inbound.seen_recently(agency.id, key, body[:480], now - DUPLICATE_WINDOW):
            result = InboundResult("duplicate")
        elif number is None:
            result = InboundResult("unknown_number")
        else:
            result = _process(repos, found, number, body, now)
        command = parse(body)
        repos.inbound.add(
            agency_id=agency.id,
            received_at=now,
            number=key,
            shortcode=request.shortcode.strip()[:32],
            text=body[:480],
            command=None if isinstance(command, NotUnderstood) else command.describe(),
            patrons_matched=result.patrons,
            outcome=result.outcome,
            renewed=result.renewed,
            refused=result.refused,
            replies=result.replies,
        )
    return result


def _process(
    repos: Repositories, found: InboundAgency, number: str, body: str, now: dt.datetime
) -> InboundResult:
    agency, settings = found.agency, found.settings
    matched = repos.patrons.by_number(agency.id, number)
    if not matched:
        return InboundResult("unknown_number")  # the spec: no reply to an unknown number
    result = InboundResult("renewed", patrons=[p.patron_id for _, p in matched])
    texts = Texts(agency.language.value, settings.get("texts", {}))
    replies: list[str] = []
    command = parse(body)
    if isinstance(command, NotUnderstood):
        result.outcome = "not_understood"
        replies.append(texts.get("help", prefix=command.prefix or DEFAULT_PREFIX))
    else:
        by_patron = _loans_to_consider(repos, agency, matched, command)
        if by_patron is None:
            assert isinstance(command, RenewItem)
            result.outcome = "not_on_loan"
            replies.append(texts.get("not_on_loan", item=command.item_number))
        elif not any(loans for _, loans in by_patron):
            result.outcome = "no_loans"
            replies.append(texts.get("no_loans"))
        else:
            policy = renewal_policy(settings)
            replies.extend(_renew(repos, agency, policy, texts, by_patron, now, result))
            if result.renewed == 0:
                result.outcome = "nothing_renewed"
    messages = [
        prepare(
            repos,
            agency,
            number,
            reply,
            now=now,
            send_at=None,
            origin="renewal",
            settings=settings,
        )
        for reply in replies
    ]
    result.replies = repos.outbox.enqueue(messages, now)
    return result


def _loans_to_consider(
    repos: Repositories,
    agency: Agency,
    matched: list[tuple[int, Patron]],
    command: RenewAll | RenewItem,
) -> list[tuple[Patron, list[tuple[Loan, str]]]] | None:
    """Each matched patron with the loans the command is about; None: the item is not theirs."""
    loans = repos.circulation.loans_with_titles([pk for pk, _ in matched])
    if isinstance(command, RenewItem):
        loans = [(loan, title) for loan, title in loans if loan.item_number == command.item_number]
        if not loans:
            return None
    return [
        (patron, [(loan, title) for loan, title in loans if loan.patron_id == patron.patron_id])
        for _, patron in matched
    ]


def _renew(
    repos: Repositories,
    agency: Agency,
    policy: RenewalPolicy,
    texts: Texts,
    by_patron: list[tuple[Patron, list[tuple[Loan, str]]]],
    now: dt.datetime,
    result: InboundResult,
) -> list[str]:
    today = now.astimezone(agency.zone).date()
    items = [loan.item_number for _, loans in by_patron for loan, _ in loans]
    reservations = repos.circulation.reservations_for_items(agency.id, items)
    replies: list[str] = []
    for patron, loans in by_patron:
        if not loans:
            continue
        lines: list[LoanLine] = []
        for loan, title in loans:
            decision = decide_renewal(loan, patron, reservations, policy, today)
            if isinstance(decision, Renewed):
                assert loan.id is not None
                if repos.circulation.renew(loan.id, decision.new_due_date, loan.renewal_count):
                    lines.append(LoanLine(title, decision.new_due_date, None))
                    result.renewed += 1
                    continue
                decision = Refused(RefusalReason.OTHER)  # renewed by someone else just now
            result.refused += 1
            lines.append(LoanLine(title, None, decision.reason))
        replies.extend(renewal_report(texts, patron.name, lines))
    return replies
