"""Provider callbacks: who may call, and recording what delivery reports say.

Each provider proves itself differently (HTTP Basic of an integration user for LINK, an HMAC in
Kannel's ``dlr-url``, a JWT for GatewayAPI). ``receive_report_batch`` takes calls that arrived
together, checks each one's proof against its agency as stored now, reads its report only then,
and applies the reports in one transaction. Reports are written once:
``OutboxRepository.apply_report`` never moves a text out of a final state, so duplicates and late
intermediate reports change nothing.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from patronlink.config.schema import AgencySettings, SmsConfig
from patronlink.domain.agency import Agency
from patronlink.domain.delivery import Report, kannel_signature
from patronlink.domain.errors import NotFound, Unauthenticated, ValidationError
from patronlink.services.clock import Clock
from patronlink.services.secrets import VerifiedPasswords, constant_time_equals, resolve
from patronlink.services.throttle import Refused, Throttle, Ticket, TooManyAttempts
from patronlink.storage.database import Database, Repositories

log = logging.getLogger("patronlink.delivery")


@dataclass(frozen=True)
class CallbackAgency:
    """The agency a callback names, with its SMS settings (secrets still as written)."""

    agency: Agency
    settings: AgencySettings

    @property
    def sms(self) -> SmsConfig:
        return self.settings.sms

    def secret(self, key: str, environ: Mapping[str, str]) -> str:
        """A gateway secret of the agency, resolved; empty when not configured."""
        value = getattr(self.settings.sms, key)
        return resolve(str(value), environ) if value else ""


def callback_agency(db: Database, agency_ref: str) -> CallbackAgency:
    """The agency by ISIL or number; ``NotFound`` when there is none."""
    with db.transaction() as repos:
        found = repos.agencies.get_with_settings(agency_ref, branches=False)
    if found is None:
        raise NotFound(f"agency {agency_ref!r} does not exist")
    agency, settings = found
    return CallbackAgency(agency, settings)


def login_name(agency_ref: str, username: str) -> str:
    """Who the login throttle counts, as for ``/rest/{agencyId}/smsgateway`` (user names are
    the agency's own: "sms" at many of them)."""
    return f"{agency_ref.strip().upper()}/{username}"


def check_integration_user(
    db: Database,
    passwords: VerifiedPasswords,
    agency_ref: str,
    username: str,
    password: str,
    throttle: Throttle | None = None,
    client: str = "unknown",
) -> CallbackAgency:
    """The agency, if ``username``/``password`` is one of its integration users.

    ``Unauthenticated`` for a wrong user or password and for no such agency alike: an unknown
    agency pays the same argon2 check against a dummy hash, so neither the answer nor its time
    tells which agencies exist. argon2 runs outside any transaction (``VerifiedPasswords``
    remembers recent successes).

    With ``throttle``: a caller that meets a block gets ``TooManyAttempts``; a password verified
    lately is not counted (a provider's burst of good calls is never throttled); any other is
    reserved with the throttle before argon2 runs and given back when it was right, so parallel
    guesses cannot slip past the limit together.
    """
    login = login_name(agency_ref, username)
    if throttle is not None:
        blocked = throttle.refusals([(login, client)])[0]
        if blocked is not None:
            raise TooManyAttempts(blocked.retry_after)
    with db.transaction() as repos:
        found = repos.agencies.with_credentials(agency_ref, username)
    stored = found[2] if found is not None else None
    if found is None or not passwords.remembered(stored, password):
        ticket = throttle.reserve(login, client) if throttle is not None else None
        if isinstance(ticket, Refused):
            raise TooManyAttempts(ticket.retry_after)
        right = passwords.verify(stored, password) and found is not None
        if throttle is not None and isinstance(ticket, Ticket):
            throttle.settle(ticket, succeeded=right)
        if not right:
            raise Unauthenticated("wrong user or password")
    assert found is not None
    agency, settings, _ = found
    return CallbackAgency(agency, settings)


def check_kannel_signature(
    found: CallbackAgency, message_id: int, signature: str, environ: Mapping[str, str]
) -> None:
    """``Unauthenticated`` unless ``signature`` is the one the Kannel driver put in its dlr-url."""
    secret = found.secret("password", environ) if found.sms.driver == "kannel" else ""
    if not secret:
        raise Unauthenticated("this agency does not send through Kannel")
    expected = kannel_signature(secret, found.agency.id, message_id)
    if not constant_time_equals(expected, signature):
        raise Unauthenticated("wrong signature")


# -- Batches -----------------------------------------------------------------------------------

ReadReport = Callable[[CallbackAgency], Report]


@dataclass(frozen=True)
class ReportCall:
    """One provider call: which agency, how it proves itself, and how to read its report.

    ``credentials`` (an integration user's) are checked first when given; ``read`` then checks
    any other proof against the agency's settings (``Unauthenticated``) and reads the report from
    the call (``ValidationError``): nothing is read from a call that has not proved itself.
    """

    agency_ref: str
    provider: str
    read: ReadReport
    credentials: tuple[str, str] | None = None
    client: str = "unknown"  # the caller's address, for the login throttle

    @property
    def login(self) -> str | None:
        return login_name(self.agency_ref, self.credentials[0]) if self.credentials else None


# (agency id, applied | ignored | unknown, the report's delivery state)
Outcome = tuple[str, str, str]


class _Unverified(Exception):
    def __init__(self, stored: str | None) -> None:
        super().__init__("password not verified yet")
        self.stored = stored


def receive_report_batch(
    db: Database,
    passwords: VerifiedPasswords,
    calls: Sequence[ReportCall],
    clock: Clock,
    throttle: Throttle | None = None,
) -> list[Outcome | Exception]:
    """Handle several calls in one transaction: one commit for all of them.

    Each call's result is ``(agency_id, applied|ignored|unknown, delivery state)`` or the
    exception it raises (``NotFound``, ``Unauthenticated``, ``ValidationError``), with nothing
    written for it. With ``throttle``, the calls that meet a block of the login throttle are
    refused first (``TooManyAttempts``, nothing else read for them): the throttle is peeked in
    the batch's own transaction, which saves a transaction a batch. The
    agency and the user's password hash are read in the transaction that writes, so a
    ``config apply`` takes effect with the next call. A password not checked against the same
    stored hash recently is verified with argon2 after the batch, outside any transaction, and
    that call is then handled alone. An agency's reports are applied in the order they arrived,
    by two statements for the batch (``OutboxRepository.apply_reports``, which locks the texts
    in the order of their ids, so two batches in two processes never wait on each other in a
    cycle).
    """
    now = clock()
    with db.transaction() as repos:
        results = _throttled(repos, throttle, calls)
        agencies: dict[tuple[str, str | None], tuple[CallbackAgency, str | None] | None] = {}
        ready: list[tuple[int, str, Report]] = []
        for i, call in enumerate(calls):
            if results[i] is not None:  # refused by the throttle
                continue
            user = call.credentials[0] if call.credentials else None
            key = (call.agency_ref, user)
            if key not in agencies:
                agencies[key] = _lookup(repos, call.agency_ref, user)
            found = agencies[key]
            try:
                if found is None:
                    if call.credentials:  # the dummy argon2 check after the batch, as a user's
                        raise _Unverified(None)
                    raise NotFound(f"agency {call.agency_ref!r} does not exist")
                agency, stored = found
                if call.credentials and not passwords.remembered(stored, call.credentials[1]):
                    raise _Unverified(stored)
                ready.append((i, agency.agency.id, call.read(agency)))
            except (NotFound, Unauthenticated, ValidationError, _Unverified) as exc:
                results[i] = exc
        for i, outcome in _apply(repos, ready, now):
            results[i] = outcome
    out: list[Outcome | Exception] = []
    for call, result in zip(calls, results, strict=True):
        if isinstance(result, _Unverified):
            out.append(_verified_alone(db, passwords, call, result.stored, clock, throttle))
            continue
        assert result is not None
        out.append(result)
    for call, result in zip(calls, out, strict=True):
        if isinstance(result, tuple) and result[1] == "unknown":
            log.warning(
                "delivery report for an unknown text",
                extra={"provider": call.provider, "agency": result[0]},
            )
    return out


def _throttled(
    repos: Repositories, throttle: Throttle | None, calls: Sequence[ReportCall]
) -> list[Outcome | Exception | None]:
    """``TooManyAttempts`` for each call that meets a block of the throttle (one peek, in the
    batch's transaction), None for the others."""
    if throttle is None:
        return [None] * len(calls)
    blocks = throttle.refusals_in(repos, [(call.login, call.client) for call in calls])
    return [None if b is None else TooManyAttempts(b.retry_after) for b in blocks]


def _apply(
    repos: Repositories, ready: Sequence[tuple[int, str, Report]], now: dt.datetime
) -> list[tuple[int, Outcome]]:
    """Apply the reports (call index, agency id, report) an agency at a time, each agency's in
    the order they came; the outcome of each call index."""
    by_agency: dict[str, list[tuple[int, Report]]] = {}
    for i, agency_id, report in ready:
        by_agency.setdefault(agency_id, []).append((i, report))
    out: list[tuple[int, Outcome]] = []
    for agency_id, reports in sorted(by_agency.items()):
        applied = repos.outbox.apply_reports(agency_id, [r for _, r in reports], now)
        out += [
            (i, (agency_id, what, report.state.value))
            for (i, report), what in zip(reports, applied, strict=True)
        ]
    return out


def _verified_alone(
    db: Database,
    passwords: VerifiedPasswords,
    call: ReportCall,
    stored: str | None,
    clock: Clock,
    throttle: Throttle | None,
) -> Outcome | Exception:
    """A call whose password needs argon2: reserved with the throttle before the check (a
    guess is counted even while its check runs), given back when it was right, then handled."""
    assert call.credentials is not None
    assert call.login is not None
    ticket = throttle.reserve(call.login, call.client) if throttle is not None else None
    if isinstance(ticket, Refused):
        return TooManyAttempts(ticket.retry_after)
    right = passwords.verify(stored, call.credentials[1])
    if throttle is not None and isinstance(ticket, Ticket):
        throttle.settle(ticket, succeeded=right)
    if not right:
        return Unauthenticated("wrong user or password")
    retried = receive_report_batch(db, passwords, [call], clock)[0]
    return retried if not isinstance(retried, _Unverified) else Unauthenticated("")


def _lookup(
    repos: Repositories, agency_ref: str, user: str | None
) -> tuple[CallbackAgency, str | None] | None:
    if user is not None:
        with_user = repos.agencies.with_credentials(agency_ref, user)
        if with_user is None:
            return None
        agency, settings, stored = with_user
        return CallbackAgency(agency, settings), stored
    found = repos.agencies.get_with_settings(agency_ref, branches=False)
    if found is None:
        return None
    return CallbackAgency(found[0], found[1]), None
