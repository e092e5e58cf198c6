"""What SMS providers call back on: delivery reports and inbound texts in their own formats.

::

    POST /sms/dlr/linkmobility/{agencyId}  LINK's delivery report    Basic (integration user)
    GET  /sms/dlr/kannel/{agencyId}        Kannel's dlr-url          HMAC of the message id
    POST /sms/dlr/gatewayapi/{agencyId}    GatewayAPI status webhook X-Gwapi-Signature (HS256 JWT)
    POST /sms/mo/linkmobility/{agencyId}   LINK's MO JSON            Basic (integration user)
    POST /sms/mo/gatewayapi/{agencyId}     GatewayAPI MO webhook     X-Gwapi-Signature (HS256 JWT)

Every call is authenticated before anything is read from its body: a wrong credential is 401
and writes nothing, and counts towards the same throttle as the seed's SMS callback. A report on
a text we do not know is answered 200 (and logged), so that the provider stops retrying; a body
that is not the provider's shape is 400; nothing the caller sends makes a 5xx. Inbound texts go
through the same batcher as ``/rest/{agencyId}/smsgateway`` and renew exactly like it.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import warnings
from collections.abc import Mapping
from typing import Annotated, Any
from urllib.parse import parse_qsl

import anyio.to_thread
import jwt
from fastapi import APIRouter, Path, Request, Response
from jwt.warnings import InsecureKeyLengthWarning
from prometheus_client import CollectorRegistry, Counter

from patronlink.domain.delivery import Report
from patronlink.domain.errors import NotFound, Unauthenticated, ValidationError
from patronlink.domain.provider_formats import (
    InboundText,
    gatewayapi_inbound,
    gatewayapi_report,
    kannel_report,
    linkmobility_inbound,
    linkmobility_report,
)
from patronlink.services.clock import Clock
from patronlink.services.delivery_reports import (
    CallbackAgency,
    Outcome,
    ReportCall,
    callback_agency,
    check_integration_user,
    check_kannel_signature,
    receive_report_batch,
)
from patronlink.services.renew_by_sms import InboundRequest
from patronlink.services.secrets import VerifiedPasswords
from patronlink.services.throttle import Refused, Throttle, TooManyAttempts
from patronlink.storage.database import Database
from patronlink.web.sms_gateway import THROTTLED, InboundBatcher

router = APIRouter(tags=["sms provider callbacks"])

_AGENCY = "ISIL (DK-761500) or bare number (761500)"
SIGNATURE_HEADER = "X-Gwapi-Signature"
BODY_SECONDS = 30


class DeliveryReportMetrics:
    """Reports received, by provider and what they did (delivered, failed, pending, ignored,
    unknown)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.reports = Counter(
            "patronlink_sms_delivery_reports",
            "Delivery reports received, by provider and outcome",
            ["provider", "outcome"],
            registry=registry,
        )

    def observe(self, provider: str, outcome: Outcome) -> None:
        _, applied, state = outcome
        self.reports.labels(provider, state if applied == "applied" else applied).inc()


MAX_BATCH = 64


class ReportBatcher:
    """Hands report calls to one thread at a time, in batches of those that arrived meanwhile.

    As ``InboundBatcher`` does for the SMS callback: under load the calls that queue up behind a
    batch share the next transaction, so the trip to the thread, the agency and credentials
    query and the commit are paid once per batch. ``python -m bench.dlr --messages 2000`` on the
    shared 2-core machine (load average 12): PostgreSQL 0.21 of /healthz with two transactions
    per report, 0.41 batched; SQLite 0.47 and 0.40, within that machine's noise.
    """

    def __init__(
        self, db: Database, passwords: VerifiedPasswords, clock: Clock, throttle: Throttle
    ) -> None:
        self._db = db
        self._passwords = passwords
        self._clock = clock
        self._throttle = throttle
        self._pending: list[tuple[ReportCall, asyncio.Future[Outcome | Exception]]] = []
        self._draining: asyncio.Task[None] | None = None

    async def handle(self, call: ReportCall) -> Outcome | Exception:
        future: asyncio.Future[Outcome | Exception] = asyncio.get_running_loop().create_future()
        self._pending.append((call, future))
        if self._draining is None or self._draining.done():
            self._draining = asyncio.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        while self._pending:
            batch = self._pending[:MAX_BATCH]
            del self._pending[:MAX_BATCH]
            calls = [call for call, _ in batch]
            try:
                results = await anyio.to_thread.run_sync(self._handle_batch, calls)
            except asyncio.CancelledError:  # shutting down: nobody is left to answer
                for _, future in batch + self._pending:
                    future.cancel()
                self._pending.clear()
                raise
            except Exception as exc:  # noqa: BLE001 - every waiting caller must hear of it
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for (_, future), result in zip(batch, results, strict=True):
                if not future.done():
                    future.set_result(result)

    def _handle_batch(self, calls: list[ReportCall]) -> list[Outcome | Exception]:
        """In a worker thread: refuse the calls that meet a block (one peek for the batch, in
        the batch's transaction), handle the rest; a password that needs argon2 is counted
        before its check."""
        return receive_report_batch(self._db, self._passwords, calls, self._clock, self._throttle)


def _plain(status: int, message: str, headers: Mapping[str, str] | None = None) -> Response:
    return Response(
        message + "\n", status_code=status, media_type="text/plain", headers=dict(headers or {})
    )


_OK = b"OK\n"  # LINK can be set to require a body; "OK" is the usual one, and harmless otherwise


def _ok() -> Response:
    return Response(_OK, status_code=200, media_type="text/plain")


class _Refused(Exception):
    def __init__(self, response: Response) -> None:
        super().__init__(response.status_code)
        self.response = response


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


# One answer for every refused credential and for an unknown agency alike, so that neither the
# status nor the body tells a caller which agencies exist.
WRONG_CREDENTIALS = "wrong or missing credentials"


def _throttle(request: Request) -> Throttle:
    throttle: Throttle = request.app.state.inbound_throttle
    return throttle


def _too_many(retry_after: int) -> Response:
    return _plain(429, THROTTLED, {"Retry-After": str(retry_after)})


async def _unauthorised(
    request: Request, throttle: Throttle, scheme: str, user: str | None = None
) -> _Refused:
    """A failed login: counted against the caller's address (and the user, if named); 401, or
    429 once the caller is throttled."""
    ticket = await anyio.to_thread.run_sync(throttle.reserve, user, _client(request))
    if isinstance(ticket, Refused):
        return _Refused(_too_many(ticket.retry_after))
    return _Refused(_plain(401, WRONG_CREDENTIALS, {"WWW-Authenticate": scheme}))


def _basic(request: Request) -> tuple[str, str] | None:
    """User and password of RFC 7617 Basic credentials; None when absent or unreadable."""
    header = request.headers.get("authorization", "")
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic" or not encoded or len(encoded) > 2048:
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, sep, password = decoded.partition(":")
    if not sep or not user or "\x00" in decoded:
        return None
    return user, password


async def _body(request: Request) -> bytes:
    """The request's body, read within ``BODY_SECONDS``.

    ``asyncio.timeout`` rather than ``wait_for``: on Python 3.11 ``wait_for`` wraps the read in
    a task of its own and resumes the caller through a second future, two more turns of the
    event loop for every call even when the body is there already (a report's body always is).
    """
    async with asyncio.timeout(BODY_SECONDS):
        return await request.body()


async def _json_body(request: Request) -> Any:
    raw = await _body(request)
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise _Refused(_plain(400, "the body is not JSON")) from exc


async def _integration_user(request: Request, agency_id: str) -> CallbackAgency:
    """LINK: the agency, if the Basic credentials are one of its integration users."""
    throttle = _throttle(request)
    credentials = _basic(request)
    if credentials is None:
        raise await _unauthorised(request, throttle, _BASIC)
    try:
        found = await anyio.to_thread.run_sync(
            check_integration_user,
            request.app.state.db,
            request.app.state.passwords,
            agency_id,
            *credentials,
            throttle,
            _client(request),
        )
    except TooManyAttempts as exc:
        raise _Refused(_too_many(exc.retry_after)) from exc
    except (NotFound, Unauthenticated) as exc:  # counted by the throttle already
        raise _Refused(_plain(401, WRONG_CREDENTIALS, {"WWW-Authenticate": _BASIC})) from exc
    return found


async def _agency(request: Request, agency_id: str, scheme: str) -> CallbackAgency:
    try:
        return await anyio.to_thread.run_sync(callback_agency, request.app.state.db, agency_id)
    except NotFound as exc:
        raise await _unauthorised(request, _throttle(request), scheme) from exc


def verify_gatewayapi(
    found: CallbackAgency, token: str, environ: Mapping[str, str]
) -> dict[str, Any]:
    """The claims of GatewayAPI's ``X-Gwapi-Signature``; ``Unauthenticated`` unless it is an
    HS256 JWT signed with the agency's ``webhook_secret``."""
    secret = found.secret("webhook_secret", environ)
    if not secret or found.sms.driver != "gatewayapi":
        raise Unauthenticated("this agency takes no GatewayAPI webhooks")
    try:
        with warnings.catch_warnings():
            # The secret is what the agency typed into GatewayAPI's dashboard (its docs use
            # "secret"); a short one is the agency's risk to take, not a reason to refuse.
            warnings.simplefilter("ignore", InsecureKeyLengthWarning)
            claims = jwt.decode(
                token, secret, algorithms=["HS256"], options={"require": [], "verify_aud": False}
            )
    except jwt.PyJWTError as exc:
        raise Unauthenticated("bad X-Gwapi-Signature") from exc
    return claims if isinstance(claims, dict) else {}


def _merged(body: Any, claims: dict[str, Any]) -> Any:
    """The call's data: the JWT's claims over the body.

    The claims are the callback's own fields (GatewayAPI's docs decode their example token to
    ``id``, ``msisdn``, ``status``, ...): what they say wins, the body only fills in fields the
    token lacks, so a valid token cannot be replayed with a body that means something else.
    """
    if isinstance(body, dict):
        return {**body, **claims}
    return claims or body


async def _gatewayapi_claims(request: Request, agency_id: str) -> tuple[CallbackAgency, Any]:
    """GatewayAPI MO: the agency and the call's data, once the JWT verifies with its secret."""
    throttle = _throttle(request)
    blocked = (await anyio.to_thread.run_sync(throttle.refusals, [(None, _client(request))]))[0]
    if blocked is not None:
        raise _Refused(_too_many(blocked.retry_after))
    found = await _agency(request, agency_id, "JWT")
    token = request.headers.get(SIGNATURE_HEADER, "")
    try:
        claims = verify_gatewayapi(found, token, request.app.state.environ)
    except Unauthenticated as exc:
        raise await _unauthorised(request, throttle, "JWT") from exc
    return found, _merged(await _json_body(request), claims)


async def _report(request: Request, call: ReportCall, scheme: str) -> Response:
    """Hand ``call`` to the batcher and answer as its result says."""
    batcher: ReportBatcher = request.app.state.report_batcher
    result = await batcher.handle(call)
    if isinstance(result, TooManyAttempts):
        return _too_many(result.retry_after)
    if isinstance(result, NotFound | Unauthenticated):
        if call.credentials:  # a password: the batch counted it with the throttle already
            return _plain(401, WRONG_CREDENTIALS, {"WWW-Authenticate": scheme})
        # A signature (HMAC, JWT) cannot be guessed, but a caller trying is still counted.
        return (await _unauthorised(request, _throttle(request), scheme)).response
    if isinstance(result, ValidationError):
        return _plain(400, str(result))
    if isinstance(result, Exception):
        raise result
    request.app.state.report_metrics.observe(call.provider, result)
    return _ok()


def _refusal(exc: Exception) -> Response:
    if isinstance(exc, _Refused):
        return exc.response
    assert isinstance(exc, ValidationError)
    return _plain(400, str(exc))


def _text(description: str) -> dict[str, object]:
    return {"description": description, "content": {"text/plain": {"schema": {"type": "string"}}}}


_RESPONSES: dict[int | str, dict[str, object]] = {
    200: _text("taken (also a report on a text we do not know); inbound texts: an empty body"),
    400: _text("the body is not the provider's format"),
    401: _text(
        "wrong or missing credentials, or no such agency (the two answer alike); nothing written"
    ),
    403: _text("inbound texts: renewal by SMS is switched off for the agency"),
    413: _text("the body is larger than 1 MiB"),
    429: _text("too many failed logins from this address; try again later"),
}


_BASIC = 'Basic realm="patronlink"'


@router.post("/sms/dlr/linkmobility/{agency_id}", response_class=Response, responses=_RESPONSES)
async def linkmobility_dlr(
    request: Request, agency_id: Annotated[str, Path(description=_AGENCY, max_length=64)]
) -> Response:
    """LINK Mobility's delivery report (SMS REST API MT/DLR 1.18)."""
    try:
        credentials = _basic(request)
        if credentials is None:
            raise await _unauthorised(request, _throttle(request), _BASIC)
        body = await _json_body(request)
    except _Refused as exc:
        if exc.response.status_code == 400 and _basic(request) is not None:
            body = exc  # answered 400 only once the credentials are known to be right
        else:
            return exc.response

    def read(_found: CallbackAgency) -> Report:
        if isinstance(body, _Refused):
            raise ValidationError("the body is not JSON")
        return linkmobility_report(body)

    call = ReportCall(agency_id, "linkmobility", read, credentials, _client(request))
    return await _report(request, call, _BASIC)


@router.get("/sms/dlr/kannel/{agency_id}", response_class=Response, responses=_RESPONSES)
async def kannel_dlr(
    request: Request, agency_id: Annotated[str, Path(description=_AGENCY, max_length=64)]
) -> Response:
    """Kannel's delivery report: the ``dlr-url`` the kannel driver gave it, filled in."""
    try:
        params = _query(request)
    except _Refused as exc:
        return exc.response
    environ = request.app.state.environ

    def read(found: CallbackAgency) -> Report:
        message_id = params.get("id", "")
        if not (message_id.isascii() and message_id.isdigit()) or len(message_id) > 18:
            raise Unauthenticated("no message id")
        check_kannel_signature(found, int(message_id), params.get("sig", ""), environ)
        return kannel_report(int(message_id), params)

    return await _report(
        request, ReportCall(agency_id, "kannel", read, client=_client(request)), "HMAC"
    )


def _query(request: Request) -> dict[str, str]:
    raw = request.scope.get("query_string", b"")
    try:
        pairs = parse_qsl(
            raw.decode("ascii"), keep_blank_values=True, errors="replace", max_num_fields=20
        )
    except (UnicodeDecodeError, ValueError) as exc:
        raise _Refused(_plain(400, "the query string is not readable")) from exc
    values: dict[str, str] = {}
    for name, value in pairs:
        values.setdefault(name, value.replace("\x00", "")[:600])
    return values


@router.post("/sms/dlr/gatewayapi/{agency_id}", response_class=Response, responses=_RESPONSES)
async def gatewayapi_dlr(
    request: Request, agency_id: Annotated[str, Path(description=_AGENCY, max_length=64)]
) -> Response:
    """GatewayAPI's status callback, signed in ``X-Gwapi-Signature``."""
    raw = await _body(request)
    token = request.headers.get(SIGNATURE_HEADER, "")
    environ = request.app.state.environ

    def read(found: CallbackAgency) -> Report:
        claims = verify_gatewayapi(found, token, environ)
        try:
            body = json.loads(raw)
        except (ValueError, RecursionError) as exc:
            raise ValidationError("the body is not JSON") from exc
        return gatewayapi_report(_merged(body, claims))

    call = ReportCall(agency_id, "gatewayapi", read, client=_client(request))
    return await _report(request, call, "JWT")


async def _renew(request: Request, inbound: InboundRequest) -> Response:
    batcher: InboundBatcher = request.app.state.inbound_batcher
    status, message, retry_after = await batcher.handle(inbound, _client(request))
    if status != 200:
        wait = {"Retry-After": str(retry_after)} if retry_after is not None else None
        return _plain(status, message, wait)
    return Response(b"", status_code=200, media_type="text/plain")


def _inbound(agency: str, text: InboundText, user: str = "", password: str = "") -> InboundRequest:
    return InboundRequest(
        agency=agency,
        user=user,
        password=password,
        shortcode=text.shortcode or "-",
        countrycode="",  # the number is international; the agency's country is the fallback
        number=text.number,
        text=text.text,
        preauthenticated=not user,
    )


@router.post("/sms/mo/linkmobility/{agency_id}", response_class=Response, responses=_RESPONSES)
async def linkmobility_mo(
    request: Request, agency_id: Annotated[str, Path(description=_AGENCY, max_length=64)]
) -> Response:
    """A patron's text as LINK Mobility forwards it (SMS REST API MO 1.7); renews like the
    seed's callback."""
    try:
        found = await _integration_user(request, agency_id)
        text = linkmobility_inbound(await _json_body(request))
    except (_Refused, ValidationError) as exc:
        return _refusal(exc)
    credentials = _basic(request)
    assert credentials is not None  # checked by _integration_user
    # The batcher checks the user again, as for /rest/{agencyId}/smsgateway (remembered: cheap).
    return await _renew(request, _inbound(found.agency.id, text, *credentials))


@router.post("/sms/mo/gatewayapi/{agency_id}", response_class=Response, responses=_RESPONSES)
async def gatewayapi_mo(
    request: Request, agency_id: Annotated[str, Path(description=_AGENCY, max_length=64)]
) -> Response:
    """A patron's text as GatewayAPI's MO webhook forwards it; renews like the seed's callback."""
    try:
        found, data = await _gatewayapi_claims(request, agency_id)
        text = gatewayapi_inbound(data)
    except (_Refused, ValidationError) as exc:
        return _refusal(exc)
    return await _renew(request, _inbound(found.agency.id, text))
