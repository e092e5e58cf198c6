"""Reading what providers POST to us: delivery reports and inbound texts, as they publish them.

Each reader takes the already-decoded JSON (or query parameters) and returns a ``Report`` or an
``InboundText``; anything that is not the provider's shape is a ``ValidationError`` naming the
field, never another exception. Sources:

* LINK Mobility "SMS REST API - MT and Delivery Reports" 1.18 (delivery reports: ``refId``,
  ``id``, ``operator``, ``sentTimestamp``, ``timestamp``, ``resultCode``, ``operatorResultCode``,
  ``segments``, ...) and "SMS REST API - MO" 1.7 (``destination``, ``source``,
  ``content.userData``, ``messageId``, ``timestamp``, ...).
* GatewayAPI REST docs, "Webhooks": status callback (``id``, ``msisdn``, ``time``, ``status``,
  ``error``, ``code``, ``userref``, ...) and MO SMS (``id``, ``msisdn``, ``receiver``,
  ``message``, ``senttime``, ...).
* Kannel's user guide: the ``dlr-url`` escapes ``%d`` (report type), ``%T`` (Unix time) and
  ``%A`` (the SMSC's reply), filled in by Kannel when it calls.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from patronlink.domain.delivery import (
    GATEWAYAPI_STATUSES,
    KANNEL_DLR_TYPES,
    LINKMOBILITY_RESULT_CODES,
    Report,
    message_id_of,
    read_code,
)
from patronlink.domain.errors import ValidationError

MAX_TEXT = 480  # as the seed's /rest/{agencyId}/smsgateway takes it
MAX_FIELD = 128


@dataclass(frozen=True, slots=True)
class InboundText:
    """A patron's text as a provider delivers it: sender number, the number texted, the text."""

    number: str
    shortcode: str
    text: str


def _object(body: Any) -> Mapping[str, Any]:
    if not isinstance(body, dict):
        raise ValidationError("the body is not a JSON object")
    return body


def _text(
    body: Mapping[str, Any], key: str, *, required: bool = True, limit: int = MAX_FIELD
) -> str:
    value = body.get(key)
    if value is None and not required:
        return ""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ValidationError(f"{key} is missing or not a string", field=key)
    text = str(value)
    if "\x00" in text:
        raise ValidationError(f"{key} contains a NUL character", field=key)
    if len(text) > limit:
        raise ValidationError(f"{key} is longer than {limit} characters", field=key)
    if required and not text.strip():
        raise ValidationError(f"{key} is empty", field=key)
    return text


def _rfc3339(value: Any) -> dt.datetime | None:
    """An RFC 3339 time (``2015-11-19T09:37:00Z``) as UTC; None when absent or unreadable."""
    if not isinstance(value, str) or len(value) > 40:
        return None
    try:
        moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment.astimezone(dt.UTC) if moment.tzinfo is not None else None


def _unix(value: Any) -> dt.datetime | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        seconds = float(value)
        return dt.datetime.fromtimestamp(seconds, dt.UTC) if 0 < seconds < 1e11 else None
    except (ValueError, OverflowError):
        return None


def linkmobility_report(body: Any) -> Report:
    """A LINK delivery report; ``refId`` is our message id (the driver sends it)."""
    obj = _object(body)
    result = obj.get("resultCode")
    if isinstance(result, bool) or not isinstance(result, int | str) or not str(result).isdigit():
        raise ValidationError("resultCode is missing or not a number", field="resultCode")
    meaning = read_code(LINKMOBILITY_RESULT_CODES, str(int(str(result)[:9])))
    description = meaning.description
    operator = obj.get("operator")
    operator_code = obj.get("operatorResultCode")
    if (isinstance(operator, str) and operator) or isinstance(operator_code, str | int):
        said = ", ".join(
            str(part)[:64]
            for part in (operator, operator_code)
            if part is not None and not isinstance(part, bool)
        )
        description = f"{description} (operator: {said})"
    return Report(
        message_id=message_id_of(obj.get("refId")),
        state=meaning.state,
        code=meaning.code,
        description=description,
        at=_rfc3339(obj.get("timestamp")),
    )


def gatewayapi_report(body: Any) -> Report:
    """A GatewayAPI status callback; ``userref`` is our message id (the driver sends it)."""
    obj = _object(body)
    status = _text(obj, "status", limit=32).upper()
    meaning = read_code(GATEWAYAPI_STATUSES, status)
    error = obj.get("error")
    code = obj.get("code")
    description = meaning.description
    if isinstance(error, str) and error:
        description = f"{description}: {error[:500]}"
    if isinstance(code, str) and code:
        description = f"{description} [{code[:16]}]"
    return Report(
        message_id=message_id_of(obj.get("userref")),
        state=meaning.state,
        code=meaning.code,
        description=description,
        at=_unix(obj.get("time")),
    )


def kannel_report(message_id: int, params: Mapping[str, str]) -> Report:
    """A Kannel report from its ``dlr-url`` (``type``, ``at``, ``reply`` as filled in)."""
    kind = params.get("type", "")
    if not (kind.isascii() and kind.isdigit()) or len(kind) > 4:
        raise ValidationError("type is not a Kannel report type", field="type")
    meaning = read_code(KANNEL_DLR_TYPES, str(int(kind)))
    reply = params.get("reply", "").strip()
    description = f"{meaning.description}: {reply[:500]}" if reply else meaning.description
    return Report(
        message_id=message_id,
        state=meaning.state,
        code=meaning.code,
        description=description,
        at=_unix(params.get("at")),
    )


def linkmobility_inbound(body: Any) -> InboundText:
    """LINK's MO JSON: ``source`` (MSISDN with +), ``destination`` (``NO-2333``), the text in
    ``content.userData``."""
    obj = _object(body)
    content = obj.get("content")
    if not isinstance(content, dict):
        raise ValidationError("content is missing or not an object", field="content")
    return InboundText(
        number=_text(obj, "source", limit=40),
        shortcode=_text(obj, "destination", required=False, limit=32),
        text=_text(content, "userData", limit=MAX_TEXT),
    )


def gatewayapi_inbound(body: Any) -> InboundText:
    """GatewayAPI's MO webhook: ``msisdn`` (a number, country code first), ``receiver``,
    ``message``."""
    obj = _object(body)
    msisdn = _text(obj, "msisdn", limit=20)
    if not msisdn.isascii() or not msisdn.lstrip("+").isdigit():
        raise ValidationError("msisdn is not a number", field="msisdn")
    return InboundText(
        number="+" + msisdn.lstrip("+"),
        shortcode=_text(obj, "receiver", required=False, limit=32),
        text=_text(obj, "message", limit=MAX_TEXT),
    )
