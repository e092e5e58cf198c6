"""Renewal by SMS: a provider relays "<prefix> forny alle" and every loan of every patron sharing
the sender's number is renewed where the rules allow; replies go out through the outbox.

Everything one request decides (renewals, reply texts, the log row) is committed in one
transaction, so a crash leaves either all of it or none. The same agency, number and text within
``DUPLICATE_WINDOW`` is processed once: providers retry webhooks.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field

from patronlink.config.schema import AgencySettings
from patronlink.domain import phone
from patronlink.domain.agency import Agency
from patronlink.domain.circulation import Loan, Reservation
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
from patronlink.domain.sms_command import Command, NotUnderstood, RenewAll, RenewItem, parse
from patronlink.services.circulation import renewal_policy
from patronlink.services.clock import Clock
from patronlink.services.outbox import prepare
from patronlink.services.secrets import VerifiedPasswords
from patronlink.services.throttle import Throttle, Ticket, TooManyAttempts
from patronlink.storage.database import Database, Repositories

DUPLICATE_WINDOW = dt.timedelta(seconds=120)

log = logging.getLogger("patronlink.inbound")


@dataclass(frozen=True)
class InboundRequest:
    agency: str
    user: str
    password: str
    shortcode: str
    countrycode: str
    number: str
    text: str
    # The caller proved the request came from the agency's provider another way (GatewayAPI's
    # JWT, checked in ``patronlink.web.provider_callbacks``): no integration user is checked.
    preauthenticated: bool = False
    client: str = "unknown"  # the caller's address, for the login throttle

    @property
    def login_name(self) -> str:
        """Who the throttle counts: user names are the agency's own ("sms" at many of them)."""
        return f"{self.agency.strip().upper()}/{self.user}"


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
    settings: AgencySettings


class _Unverified(Exception):
    """The password was not checked against this stored hash recently: argon2 must run first."""

    def __init__(self, stored: str | None) -> None:
        super().__init__("password not verified yet")
        self.stored = stored


Credentials = tuple[Agency, AgencySettings, str | None]


@dataclass
class _Reads:
    """What the requests of one transaction share: reads that nothing in it changes."""

    credentials: dict[tuple[str, str], Credentials | None] = field(default_factory=dict)
    patrons: dict[tuple[str, str], list[tuple[int, Patron]]] = field(default_factory=dict)

    def credentials_for(self, repos: Repositories, request: InboundRequest) -> Credentials | None:
        key = (request.agency, request.user)
        if key not in self.credentials:
            self.credentials[key] = repos.agencies.with_credentials(request.agency, request.user)
        return self.credentials[key]

    def patrons_by_number(
        self, repos: Repositories, agency_id: str, number: str
    ) -> list[tuple[int, Patron]]:
        key = (agency_id, number)
        if key not in self.patrons:
            self.patrons[key] = repos.patrons.by_number(agency_id, number)
        return self.patrons[key]


def receive_inbound(
    db: Database, request: InboundRequest, passwords: VerifiedPasswords, clock: Clock
) -> InboundResult:
    """Check the agency and the credentials, then handle the text, all in one transaction.

    Raises ``Unauthenticated`` (no such agency, or wrong user or password: the two alike) or
    ``PermissionDenied`` (renewal by SMS is switched off), in that order, with nothing written.

    The agency, its settings and the user's password hash are read in the transaction that
    does the work, so a ``config apply`` takes effect with the next request. A password that
    was checked against the same stored hash recently is recognised at once; otherwise argon2
    (~50 ms) runs outside any transaction, since it must not hold SQLite's write lock, and the
    transaction is started again.
    """
    for _ in range(3):
        now = clock()
        with db.transaction() as repos:
            try:
                return _receive(repos, request, passwords, now, _Reads())
            except _Unverified as exc:
                stored = exc.stored
        if not passwords.verify(stored, request.password):
            raise Unauthenticated("wrong user or password")
    # The stored hash changed between each check and the next transaction, three times over.
    raise Unauthenticated("wrong user or password")


def receive_inbound_batch(
    db: Database,
    requests: list[InboundRequest],
    passwords: VerifiedPasswords,
    clock: Clock,
    throttle: Throttle | None = None,
) -> list[InboundResult | Exception]:
    """Handle several requests in one transaction: one commit (one wait for the disk) for all.

    Each request's result is what ``receive_inbound`` would give it alone, or the exception it
    would raise. With ``throttle``, the requests that meet a block of the login throttle are
    refused first (``TooManyAttempts``, nothing read for them), the throttle peeked in the
    batch's own transaction rather than in one before it (on PostgreSQL three round trips fewer
    a batch: the pool's ping, ``BEGIN``, ``COMMIT``). Requests are taken in the order of their
    senders' numbers, so two batches in two processes take the numbers' locks in the same order.
    Refusals (no agency, switched off) write nothing, so they do not disturb the rest. A password
    not yet verified, and every request of a batch that failed as a whole (its transaction is
    rolled back), are then handled one by one as if they had come alone (``_alone``, which meets
    the throttle's blocks in its reservation): nothing is lost and nothing is done twice.
    """
    results: list[InboundResult | Exception | None] = [None] * len(requests)
    order = sorted(range(len(requests)), key=lambda i: _sender_key(requests[i]))
    now = clock()
    reads = _Reads()
    try:
        with db.transaction() as repos:
            if throttle is not None:
                attempts = [(r.login_name, r.client) for r in requests]
                for i, block in enumerate(throttle.refusals_in(repos, attempts)):
                    if block is not None:
                        results[i] = TooManyAttempts(block.retry_after)
            for i in order:
                if results[i] is not None:  # refused by the throttle
                    continue
                try:
                    results[i] = _receive(repos, requests[i], passwords, now, reads)
                except (NotFound, PermissionDenied, _Unverified) as exc:
                    results[i] = exc  # raised before anything was written
    except Exception:
        log.exception("a batch of %d SMS callbacks failed; handling them one by one", len(order))
        results = [None] * len(requests)
    out: list[InboundResult | Exception] = []
    for request, result in zip(requests, results, strict=True):
        if result is not None and not isinstance(result, _Unverified):
            out.append(result)
            continue
        out.append(_alone(db, request, passwords, clock, throttle))
    return out


def _alone(
    db: Database,
    request: InboundRequest,
    passwords: VerifiedPasswords,
    clock: Clock,
    throttle: Throttle | None,
) -> InboundResult | Exception:
    """One request on its own, reserved with the throttle before argon2 runs."""
    ticket = throttle.reserve(request.login_name, request.client) if throttle else None
    if ticket is not None and not isinstance(ticket, Ticket):
        return TooManyAttempts(ticket.retry_after)
    result: InboundResult | Exception
    try:
        result = receive_inbound(db, request, passwords, clock)
    except Exception as exc:  # noqa: BLE001 - handed to that request's caller, raised there
        result = exc
    if throttle is not None and isinstance(ticket, Ticket):
        throttle.settle(ticket, succeeded=not isinstance(result, Unauthenticated))
    return result


def _sender_key(request: InboundRequest) -> tuple[str, str]:
    try:
        number = phone.normalise(request.number, request.countrycode.strip().lstrip("+"))
    except (InvalidPhoneNumber, ValueError):
        number = request.number.strip()
    return request.agency, number


def _receive(
    repos: Repositories,
    request: InboundRequest,
    passwords: VerifiedPasswords,
    now: dt.datetime,
    reads: _Reads,
) -> InboundResult:
    """One request inside a transaction; raises before writing anything when it is refused."""
    body = request.text.strip()
    command = parse(body)
    found = reads.credentials_for(repos, request)
    if found is None:
        # An unknown agency is answered as a wrong password, after the same argon2 check
        # against a dummy hash: neither the status, the body nor the time tells an attacker
        # which agencies exist.
        raise _Unverified(None)
    agency, settings, stored = found
    if not request.preauthenticated and not passwords.remembered(stored, request.password):
        raise _Unverified(stored)
    if not settings.renewal.sms_enabled:
        raise PermissionDenied(f"renewal by SMS is not enabled for {agency.id}")
    return _handle(repos, InboundAgency(agency, settings), request, body, command, now, reads)


def _handle(
    repos: Repositories,
    found: InboundAgency,
    request: InboundRequest,
    body: str,
    command: Command,
    now: dt.datetime,
    reads: _Reads,
) -> InboundResult:
    agency = found.agency
    try:
        number: str | None = phone.normalise(
            request.number, request.countrycode.strip().lstrip("+") or agency.country_code
        )
    except (InvalidPhoneNumber, ValueError):
        number = None
    key = number or request.number.strip()[:40]
    # This use case does not change patrons, so they are read before the number's lock (one
    # round trip less while it is held); the duplicate check and the loans are read under it.
    matched = reads.patrons_by_number(repos, agency.id, number) if number is not None else []
    repos.inbound.serialise_number(agency.id, key)
    if repos.inbound.seen_recently(agency.id, key, body[:480], now - DUPLICATE_WINDOW):
        result = InboundResult("duplicate")
    elif number is None:
        result = InboundResult("unknown_number")
    else:
        result = _process(repos, found, number, matched, command, now)
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
    repos: Repositories,
    found: InboundAgency,
    number: str,
    matched: list[tuple[int, Patron]],
    command: Command,
    now: dt.datetime,
) -> InboundResult:
    agency, settings = found.agency, found.settings
    if not matched:
        return InboundResult("unknown_number")  # the spec: no reply to an unknown number
    result = InboundResult("renewed", patrons=[p.patron_id for _, p in matched])
    texts = Texts(agency.language.value, settings.texts)
    replies: list[str] = []
    if isinstance(command, NotUnderstood):
        result.outcome = "not_understood"
        replies.append(texts.get("help", prefix=command.prefix or DEFAULT_PREFIX))
    else:
        considered = _loans_to_consider(repos, agency, matched, command)
        if considered is None:
            assert isinstance(command, RenewItem)
            result.outcome = "not_on_loan"
            replies.append(texts.get("not_on_loan", item=command.item_number))
        elif not any(loans for _, loans in considered[0]):
            result.outcome = "no_loans"
            replies.append(texts.get("no_loans"))
        else:
            by_patron, reservations = considered
            policy = renewal_policy(settings)
            replies.extend(
                _renew(repos, agency, policy, texts, by_patron, reservations, now, result)
            )
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
) -> tuple[list[tuple[Patron, list[tuple[Loan, str]]]], list[Reservation]] | None:
    """Each matched patron with the loans the command is about, and the reservations on their
    items; None: the item is not theirs."""
    loans, reservations = repos.circulation.active_loans_and_reservations(
        agency.id, [pk for pk, _ in matched]
    )
    if isinstance(command, RenewItem):
        loans = [(loan, title) for loan, title in loans if loan.item_number == command.item_number]
        if not loans:
            return None
    by_patron = [
        (patron, [(loan, title) for loan, title in loans if loan.patron_id == patron.patron_id])
        for _, patron in matched
    ]
    return by_patron, reservations


def _renew(
    repos: Repositories,
    agency: Agency,
    policy: RenewalPolicy,
    texts: Texts,
    by_patron: list[tuple[Patron, list[tuple[Loan, str]]]],
    reservations: list[Reservation],
    now: dt.datetime,
    result: InboundResult,
) -> list[str]:
    today = now.astimezone(agency.zone).date()
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
