"""The Aleph-compatible New Patron API: ``GET``/``PUT /rest-dlf/patron/``.

``/rest-dlf/patron/`` serves the deployment's default agency (``PATRONLINK_DEFAULT_AGENCY``, or the
only agency there is); ``/rest-dlf/{agencyId}/patron/`` serves any agency by ISIL or bare number.
Both work with and without the trailing slash. Every reply, refusals included, is HTTP 200 with
an XML ``reply-code`` (how Aleph clients read them); refusals never write anything.
"""

from __future__ import annotations

import structlog
from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool

from patronlink.domain.errors import (
    ConfigError,
    Conflict,
    NotFound,
    RegistrationRefused,
    ValidationError,
)
from patronlink.services.register_patron import agency_form, register
from patronlink.services.throttle import Refused, Throttle
from patronlink.web.aleph_xml import (
    MAX_BODY_BYTES,
    REPLY_CODES,
    XmlRefused,
    created_reply,
    error_reply,
    form_reply,
    parse_new_patron,
    xml_text,
)
from patronlink.web.deps import get_clock, get_db, get_settings
from patronlink.web.schemas import BODY_ERRORS

XML_MEDIA_TYPE = "application/xml; charset=UTF-8"
MAX_AGENCY_REF = 32
DUPLICATE_TEXT = "The patron ID is already registered"

router = APIRouter(tags=["self-registration (Aleph New Patron API)"])
log = structlog.get_logger("patronlink.registration")


def _xml(body: bytes) -> Response:
    return Response(content=body, media_type=XML_MEDIA_TYPE)


def _refusal(root: str, kind: str, text: str) -> Response:
    return _xml(error_reply(root, REPLY_CODES[kind][0], text))


def _refusal_of(root: str, exc: Exception) -> Response:
    """The reply for an error of a use case; unexpected errors are logged, never shown."""
    if isinstance(exc, RegistrationRefused):
        return _refusal(root, str(exc.problem), str(exc))
    if isinstance(exc, Conflict):
        return _refusal(root, "duplicate", DUPLICATE_TEXT)
    if isinstance(exc, ValidationError):
        return _refusal(root, "invalid", f"Invalid value: {exc}")
    if isinstance(exc, NotFound):
        return _refusal(root, "unknown-agency", str(exc))
    if isinstance(exc, ConfigError):
        log.error("registration form invalid", error=str(exc))
        return _refusal(root, "misconfigured", "Self-registration is not available: " + str(exc))
    log.exception("registration failed", exc_info=exc)
    return _refusal(root, "internal", "Temporary failure, please try again later")


def _agency_ref(raw: str | None) -> str | None:
    if raw is not None and len(raw) > MAX_AGENCY_REF:
        raise NotFound(f"agency {raw[:MAX_AGENCY_REF]!r}... does not exist")
    return raw


async def _get_form(request: Request, agency_id: str | None) -> Response:
    settings = get_settings(request)
    try:
        loaded = await run_in_threadpool(
            agency_form, get_db(request), _agency_ref(agency_id), settings.default_agency
        )
    except Exception as exc:  # noqa: BLE001 - Aleph clients read reply codes, never a 5xx
        # Every failure becomes an XML reply code (Aleph clients read no HTTP status).
        return _refusal_of("get-new-patron", exc)
    return _xml(form_reply(loaded.form))


async def _read_body(request: Request) -> bytes | None:
    """The body, or None once it passes ``MAX_BODY_BYTES`` (the rest is not read)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


async def _put_patron(request: Request, agency_id: str | None) -> Response:
    root = "put-new-patron"
    # Every refused registration counts against the client's address (a refusal tells whether
    # a patron ID is registered, so refusals are what an enumeration is made of); a success is
    # given back. Reserved before the body is read, so parallel PUTs meet one count.
    throttle: Throttle = request.app.state.registration_throttle
    client = request.client.host if request.client else "unknown"
    ticket = await run_in_threadpool(throttle.reserve, None, client)
    if isinstance(ticket, Refused):
        code, text = REPLY_CODES["throttled"]
        return Response(
            content=error_reply(root, code, text),
            status_code=429,
            media_type=XML_MEDIA_TYPE,
            headers={"Retry-After": str(ticket.retry_after)},
        )
    body = await _read_body(request)
    try:
        if body is None:
            raise XmlRefused("too-large", f"The request is larger than {MAX_BODY_BYTES} bytes")
        fields = parse_new_patron(xml_text(body))
    except XmlRefused as exc:
        return _refusal(root, exc.kind, exc.message)
    settings = get_settings(request)
    try:
        registered = await run_in_threadpool(
            register,
            get_db(request),
            _agency_ref(agency_id),
            settings.default_agency,
            fields,
            get_clock(request),
        )
    except Exception as exc:  # noqa: BLE001 - Aleph clients read reply codes, never a 5xx
        # Every failure becomes an XML reply code (Aleph clients read no HTTP status).
        return _refusal_of(root, exc)
    await run_in_threadpool(lambda: throttle.settle(ticket, succeeded=True))
    log.info(
        "patron self-registered",
        agency=registered.agency_id,
        patron_id=registered.patron_id,
        status=registered.status.value,
    )
    return _xml(created_reply(registered.patron_id, registered.patron_id))


_RESPONSES: dict[int | str, dict[str, object]] = {
    200: {
        "content": {"application/xml": {}},
        "description": "an Aleph reply; reply-code 0000 is success, any other a refusal",
    }
}
_THROTTLED: dict[str, object] = {
    "content": {"application/xml": {}},
    "description": "reply-code 0901: too many refused registrations from this address; the "
    "Retry-After header says when to try again",
}
# Past the app-wide body limit (1 MiB) the limit answers 413 before the route runs; below it, a
# body over the Aleph limit (64 KiB) gets reply-code 0203.


async def get_default_form(request: Request) -> Response:
    """The New Patron form of the default agency (spec: GET /rest-dlf/patron/)."""
    return await _get_form(request, None)


async def put_default_patron(request: Request) -> Response:
    """Self-register with the default agency; the body is ``post_xml=<xml>`` or bare XML."""
    return await _put_patron(request, None)


async def get_agency_form(request: Request, agency_id: str) -> Response:
    """The New Patron form of an agency, by ISIL (DK-761500) or bare number (761500)."""
    return await _get_form(request, agency_id)


async def put_agency_patron(request: Request, agency_id: str) -> Response:
    """Self-register with an agency named by ISIL or bare number."""
    return await _put_patron(request, agency_id)


# Aleph clients call the path with its trailing slash, some without: both answer, neither
# redirects (a client need not follow a redirect of a PUT).
for _prefix, _get, _put in (
    ("/rest-dlf", get_default_form, put_default_patron),
    ("/rest-dlf/{agency_id}", get_agency_form, put_agency_patron),
):
    for _path, _public in ((f"{_prefix}/patron/", True), (f"{_prefix}/patron", False)):
        router.add_api_route(
            _path, _get, methods=["GET"], include_in_schema=_public, responses=_RESPONSES
        )
        router.add_api_route(
            _path,
            _put,
            methods=["PUT"],
            include_in_schema=_public,
            responses={**_RESPONSES, 413: BODY_ERRORS[413], 429: _THROTTLED},
        )
