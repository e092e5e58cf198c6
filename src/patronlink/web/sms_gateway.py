"""The SMS provider's callback: ``/rest/{agencyId}/smsgateway`` (GET, or POST with a form).

An accepted request gets 200 with an empty body: some providers (Kannel among them) text any body
back to the sender, and the replies go out through the outbox instead. Errors are short plain
text. The password arrives in the query string (the spec); the access log redacts it.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Annotated
from urllib.parse import parse_qsl

import anyio.to_thread
from fastapi import APIRouter, Path, Request, Response

from patronlink.domain.errors import NotFound, PermissionDenied, Unauthenticated
from patronlink.services.clock import Clock
from patronlink.services.renew_by_sms import InboundRequest, receive_inbound_batch
from patronlink.services.secrets import VerifiedPasswords
from patronlink.services.throttle import Throttle, TooManyAttempts
from patronlink.storage.database import Database

router = APIRouter(tags=["sms gateway"])

PARAMETERS = ("user", "password", "shortcode", "countrycode", "number", "text")
MAX_LENGTH = {"text": 480, "number": 40, "countrycode": 8}
DEFAULT_MAX_LENGTH = 128
# Callbacks that arrive while a batch is being handled are handled together in the next one, in
# one transaction with one commit (``receive_inbound_batch``); at most this many at once.
MAX_BATCH = 64


class BadRequest(Exception):
    pass


# (status, message, Retry-After seconds or None)
Outcome = tuple[int, str, int | None]
THROTTLED = "too many failed logins; try again later"


class InboundBatcher:
    """Hands callbacks to one thread at a time, in batches of those that arrived meanwhile.

    Each callback waits for its own result; the first waits for nobody. Under load the callbacks
    that queue up behind a batch share the next transaction, so a commit's wait for the disk, the
    trip to the thread and the credentials query are paid once per batch, not once per text.
    Blocks of the login throttle are looked up for the whole batch in the batch's own
    transaction; only the requests whose password needs argon2 are counted (the guesses among
    them).
    """

    def __init__(
        self,
        db: Database,
        passwords: VerifiedPasswords,
        clock: Clock,
        throttle: Throttle,
        max_batch: int = MAX_BATCH,
    ) -> None:
        self._db = db
        self._passwords = passwords
        self._clock = clock
        self._throttle = throttle
        self._max_batch = max_batch
        self._pending: list[tuple[InboundRequest, str, asyncio.Future[Outcome]]] = []
        self._draining: asyncio.Task[None] | None = None

    async def handle(self, inbound: InboundRequest, address: str) -> Outcome:
        """The outcome of one callback from the client at ``address``."""
        future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self._pending.append((inbound, address, future))
        if self._draining is None or self._draining.done():
            self._draining = asyncio.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        while self._pending:
            batch = self._pending[: self._max_batch]
            del self._pending[: self._max_batch]
            try:
                outcomes = await anyio.to_thread.run_sync(self._handle_batch, batch)
            except asyncio.CancelledError:  # shutting down: nobody is left to answer
                for _, _, future in batch + self._pending:
                    future.cancel()
                self._pending.clear()
                raise
            except Exception as exc:  # noqa: BLE001 - every waiting caller must hear of it
                for _, _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for (_, _, future), outcome in zip(batch, outcomes, strict=True):
                if future.done():  # the caller went away; the text was handled all the same
                    continue
                if isinstance(outcome, Exception):
                    future.set_exception(outcome)
                else:
                    future.set_result(outcome)

    def _handle_batch(
        self, batch: list[tuple[InboundRequest, str, asyncio.Future[Outcome]]]
    ) -> list[Outcome | Exception]:
        """In a worker thread: refuse what meets a block (one peek for the batch, in the
        batch's transaction), handle the rest (each one that needs argon2 is counted by the
        throttle before the check: ``receive_inbound_batch``)."""
        requests = [replace(inbound, client=address) for inbound, address, _ in batch]
        results = receive_inbound_batch(
            self._db, requests, self._passwords, self._clock, self._throttle
        )
        out: list[Outcome | Exception] = []
        for result in results:
            if isinstance(result, Exception):
                refusal = _refusal(result)
                out.append(result if refusal is None else refusal)
            else:
                out.append((200, "", None))
        return out


def _refusal(exc: Exception) -> Outcome | None:
    """The HTTP status and message of a refused request; None for a failure (a 500)."""
    if isinstance(exc, TooManyAttempts):
        return 429, THROTTLED, exc.retry_after
    if isinstance(exc, Unauthenticated):
        return 401, "wrong user or password", None
    if isinstance(exc, NotFound):
        return 404, str(exc), None
    if isinstance(exc, PermissionDenied):
        return 403, str(exc), None
    return None


def _plain(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return Response(message + "\n", status_code=status, media_type="text/plain", headers=headers)


# Kannel passes a text in the charset it got it in when its ``get-url`` names ``%C``/``%c``
# (``charset=ISO-8859-1``, ``coding=2`` for UCS-2), so ``H%F8rsholm`` is Latin-1, not broken
# UTF-8. The charsets an SMSC link hands over, by the names Kannel and IANA give them.
CHARSETS = {
    "utf-8": "utf-8",
    "utf8": "utf-8",
    "iso-8859-1": "latin-1",
    "latin1": "latin-1",
    "iso-8859-15": "iso-8859-15",
    "windows-1252": "cp1252",
    "ucs-2": "utf-16-be",
    "ucs2": "utf-16-be",
    "utf-16be": "utf-16-be",
    "utf-16": "utf-16",
}
UCS2_CODING = "2"  # Kannel's coding: 0 GSM (as the charset says), 1 8-bit, 2 UCS-2


def _text_codec(charset: bytes | None, coding: bytes | None) -> str:
    """The codec the ``text`` parameter is in; ``BadRequest`` for a charset we do not know."""
    if charset is not None:
        name = charset.decode("ascii", "replace").strip().lower()
        if name not in CHARSETS:
            raise BadRequest(f"charset {name[:32]!r} is not supported")
        return CHARSETS[name]
    if coding is not None and coding.strip() == UCS2_CODING.encode():
        return "utf-16-be"
    return "utf-8"


def _parameters(raw: bytes) -> dict[str, str]:
    try:
        # Latin-1 maps every byte to one character and back: the raw bytes of each value are
        # kept, and decoded below in the charset the request names (UTF-8 unless it names one).
        raw_pairs = parse_qsl(
            raw.decode("ascii"),
            keep_blank_values=True,
            encoding="latin-1",
            errors="strict",
            max_num_fields=50,
        )
    except UnicodeDecodeError as exc:
        raise BadRequest("the parameters are not valid UTF-8") from exc
    except ValueError as exc:
        raise BadRequest("too many parameters") from exc
    as_bytes = [(n.encode("latin-1"), v.encode("latin-1")) for n, v in raw_pairs]
    named = {n: v for n, v in as_bytes if n in (b"charset", b"coding")}
    codec = _text_codec(named.get(b"charset"), named.get(b"coding"))
    pairs: list[tuple[str, str]] = []
    for name_bytes, value_bytes in as_bytes:
        try:
            name = name_bytes.decode("utf-8")
            value = value_bytes.decode(codec if name == "text" else "utf-8")
        except UnicodeDecodeError as exc:
            if codec == "utf-8":
                raise BadRequest("the parameters are not valid UTF-8") from exc
            raise BadRequest(f"the text is not valid {codec.upper()}") from exc
        pairs.append((name, value))
    values: dict[str, str] = {}
    for name, value in pairs:
        if name in PARAMETERS:
            if name in values:
                raise BadRequest(f"parameter {name!r} is given more than once")
            if "\x00" in value:
                raise BadRequest(f"parameter {name!r} contains a NUL character")
            if len(value) > MAX_LENGTH.get(name, DEFAULT_MAX_LENGTH):
                raise BadRequest(
                    f"parameter {name!r} is longer than "
                    f"{MAX_LENGTH.get(name, DEFAULT_MAX_LENGTH)} characters"
                )
            values[name] = value
    missing = [p for p in PARAMETERS if not values.get(p, "").strip()]
    if missing:
        raise BadRequest(f"missing parameter(s): {', '.join(missing)}")
    return values


async def _handle(request: Request, agency_id: str, raw: bytes) -> Response:
    client = request.client.host if request.client else "unknown"
    try:
        values = _parameters(raw)
    except BadRequest as exc:
        return _plain(400, str(exc))
    inbound = InboundRequest(
        agency=agency_id,
        user=values["user"],
        password=values["password"],
        shortcode=values["shortcode"],
        countrycode=values["countrycode"],
        number=values["number"],
        text=values["text"],
    )
    batcher: InboundBatcher = request.app.state.inbound_batcher
    status, message, retry_after = await batcher.handle(inbound, client)
    if status == 429 and retry_after is not None:
        return _plain(status, message, {"Retry-After": str(retry_after)})
    if status != 200:
        return _plain(status, message)
    return Response(b"", status_code=200, media_type="text/plain")


# The handlers read the raw query string themselves (repeated names, NUL bytes and invalid UTF-8
# must be refused, not silently picked from), so the OpenAPI description is written out here.
_DESCRIPTIONS = {
    "user": "the integration user's name",
    "password": "the integration user's password (never logged)",
    "shortcode": "the number the patron texted (not used, but required)",
    "countrycode": "country code of the sender's number, e.g. 45",
    "number": "the sender's number, in any common shape",
    "text": "the message, e.g. 'Horsens forny alle'",
}


def _text(description: str) -> dict[str, object]:
    return {"description": description, "content": {"text/plain": {"schema": {"type": "string"}}}}


_RESPONSES: dict[int | str, dict[str, object]] = {
    200: _text("accepted; the body is empty (replies go out as ordinary texts)"),
    400: _text("a parameter is missing, repeated, too long or not UTF-8"),
    401: _text("wrong user or password, or no such agency (the two answer alike)"),
    403: _text("renewal by SMS is switched off for the agency"),
    429: _text(
        "too many failed logins for this user or from this address; the Retry-After header "
        "says when to try again"
    ),
}


def _openapi(location: str) -> dict[str, object]:
    parameters = [
        {
            "name": name,
            "in": "query",
            "required": location == "query",
            "schema": {
                "type": "string",
                "minLength": 1,
                "maxLength": MAX_LENGTH.get(name, DEFAULT_MAX_LENGTH),
            },
            "description": _DESCRIPTIONS[name],
        }
        for name in PARAMETERS
    ]
    parameters += [
        {
            "name": "charset",
            "in": "query",
            "required": False,
            "schema": {"type": "string", "enum": sorted(CHARSETS)},
            "description": "the charset of text, as Kannel's %C passes it (default UTF-8)",
        },
        {
            "name": "coding",
            "in": "query",
            "required": False,
            "schema": {"type": "string", "maxLength": 2},
            "description": "Kannel's %c: 2 is UCS-2 (UTF-16BE) when no charset is named",
        },
    ]
    extra: dict[str, object] = {"parameters": parameters}
    if location == "form":
        extra["requestBody"] = {
            "required": False,
            "description": "the same parameters as a form (providers send either, or both)",
            "content": {
                "application/x-www-form-urlencoded": {
                    "schema": {
                        "type": "object",
                        "properties": {p: {"type": "string"} for p in PARAMETERS},
                    }
                }
            },
        }
    return extra


_ROUTE = "/rest/{agency_id}/smsgateway"
_AGENCY = "ISIL (DK-761500) or bare number (761500)"


@router.get(_ROUTE, response_class=Response, responses=_RESPONSES, openapi_extra=_openapi("query"))
async def inbound_get(
    request: Request, agency_id: Annotated[str, Path(description=_AGENCY)]
) -> Response:
    """The SMS provider forwards a patron's text (docs/interfaces/renewal-by-sms.md)."""
    return await _handle(request, agency_id, request.scope.get("query_string", b""))


@router.post(_ROUTE, response_class=Response, responses=_RESPONSES, openapi_extra=_openapi("form"))
async def inbound_post(
    request: Request, agency_id: Annotated[str, Path(description=_AGENCY)]
) -> Response:
    """As GET, with the parameters in a form body, the query string or both."""
    body = await asyncio.wait_for(request.body(), timeout=30)
    query = request.scope.get("query_string", b"")
    # Providers differ: parameters in the form body, in the query string, or both.
    return await _handle(request, agency_id, b"&".join(p for p in (query, body) if p))
