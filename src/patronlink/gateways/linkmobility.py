"""The JSON gateway family (LINK Mobility "Common API"): docs/interfaces/sms-gateways.md.

Request: ``POST`` to the agency's URL with HTTP Basic auth and exactly this JSON body::

    {"source": ..., "destination": "+4552903991", "userData": ..., "platformId": ...,
     "platformPartnerId": ..., "customParameters": {"scheduledTime": "2017-06-07T15:30:00Z"}}

Added from LINK's "SMS REST API - MT and Delivery Reports" 1.18: ``sourceTON`` (configured, or
read from the source), ``refId`` (our message id, mirrored in the delivery report) and
``useDeliveryReport``: LINK defaults it to true and asks for false when no gate is named, so it
is true with ``deliveryReportGates: [dlr_gate_id]`` when the agency configures a gate, else false.

``customParameters`` is present only for a scheduled message; LINK accepts a schedule at most three
months ahead, so a later one is refused here (permanent) instead of by LINK. Characters that take
four bytes in UTF-8 (emoji) are replaced first: LINK does not carry them.

Reply: 2xx with a ``messageId`` (or 204) is sent; any other 2xx is sent too, with the reply kept
and a warning logged (LINK took the request: sending again would text the patron twice). An
error body ``{status, description, translatedDescription}`` is classified by
``patronlink.domain.gateway_codes``; a status the spec does not list falls back to HTTP: 429 and
5xx temporary, other 4xx permanent.
"""

from __future__ import annotations

import calendar
import datetime as dt
import json
import logging
from collections.abc import Callable
from typing import Any

import aiohttp

from patronlink.domain.errors import PermanentGatewayError, TemporaryGatewayError
from patronlink.domain.gateway_codes import Outcome, linkmobility_code
from patronlink.domain.sender import linkmobility_ton
from patronlink.domain.sms_text import replace_astral
from patronlink.gateways.base import GatewayConfig, OutgoingSms, SendResult
from patronlink.gateways.transport import HttpReply, HttpTransport

SCHEDULE_MONTHS_AHEAD = 3

log = logging.getLogger("patronlink.gateways.linkmobility")


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def add_months(moment: dt.datetime, months: int) -> dt.datetime:
    """``moment`` moved ``months`` calendar months on, the day clamped to the month's last."""
    month_index = moment.month - 1 + months
    year, month = moment.year + month_index // 12, month_index % 12 + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)


def rfc3339(moment: dt.datetime) -> str:
    """``moment`` in UTC as RFC 3339 with a ``Z``, as in the spec's example."""
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _error_body(response: HttpReply) -> dict[str, Any]:
    """The error JSON of a reply, or an empty dict when the body is not a JSON object."""
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return {}
    return body if isinstance(body, dict) else {}


class LinkMobilityGateway:
    """Driver for LINK Mobility; see the module docstring for the wire contract.

    ``clock`` gives the current time for the three-months rule (tests pass their own).
    """

    name = "linkmobility"
    can_schedule = True

    def __init__(
        self,
        config: GatewayConfig,
        client: aiohttp.ClientSession | None = None,
        *,
        clock: Callable[[], dt.datetime] = _utc_now,
    ) -> None:
        self._config = config
        self._clock = clock
        self._http = HttpTransport(self.name, config, client)

    def body(self, message: OutgoingSms) -> dict[str, Any]:
        """The JSON body of ``message``; ``PermanentGatewayError`` for a schedule too far ahead."""
        body: dict[str, Any] = {
            "source": self._config.source,
            "destination": message.to,
            "userData": replace_astral(message.text),
            "platformId": self._config.platform_id,
            "platformPartnerId": self._config.platform_partner_id,
            "sourceTON": self._config.source_ton or linkmobility_ton(self._config.source),
            "useDeliveryReport": bool(self._config.dlr_gate_id),
        }
        if self._config.dlr_gate_id:
            body["deliveryReportGates"] = [self._config.dlr_gate_id]
        if message.message_id is not None:
            body["refId"] = str(message.message_id)
        if message.send_at is not None:
            latest = add_months(self._clock(), SCHEDULE_MONTHS_AHEAD)
            if message.send_at > latest:
                raise PermanentGatewayError(
                    f"linkmobility: cannot schedule more than {SCHEDULE_MONTHS_AHEAD} months "
                    f"ahead ({rfc3339(message.send_at)} is after {rfc3339(latest)})"
                )
            body["customParameters"] = {"scheduledTime": rfc3339(message.send_at)}
        return body

    async def send(self, message: OutgoingSms) -> SendResult:
        response = await self._http.request(
            "POST",
            self._config.url,
            json=self.body(message),
            auth=(self._config.username, self._config.password),
        )
        status = response.status_code
        reports = bool(self._config.dlr_gate_id)
        if status == 204:
            return SendResult(gateway_message_id=None, http_status=status, reports_expected=reports)
        if 200 <= status < 300:
            return self._accepted(response, reports)
        raise self._error(response)

    def _accepted(self, response: HttpReply, reports: bool) -> SendResult:
        body = _error_body(response)
        message_id = body.get("messageId")
        if not isinstance(message_id, str) or not message_id:
            # LINK took the request; a reply we cannot read is no reason to text the patron
            # twice. Kept as it came, for staff to see.
            log.warning(
                "linkmobility: 2xx reply without a messageId taken as sent",
                extra={"http_status": response.status_code, "reply": response.text[:200]},
            )
            return SendResult(
                gateway_message_id=None,
                http_status=response.status_code,
                description=response.text.strip()[:2000] or f"HTTP {response.status_code}",
                reports_expected=reports,
            )
        result_code = body.get("resultCode")
        description = body.get("description")
        return SendResult(
            gateway_message_id=message_id,
            http_status=response.status_code,
            code=None if result_code is None else str(result_code),
            description=description if isinstance(description, str) else None,
            reports_expected=reports,
        )

    def _error(self, response: HttpReply) -> TemporaryGatewayError | PermanentGatewayError:
        status = response.status_code
        body = _error_body(response)
        raw_code = body.get("status")
        # The spec shows a number; accept its string form too, a proxy may have re-encoded it.
        numeric = isinstance(raw_code, int | str) and str(raw_code).isdigit()
        known = linkmobility_code(int(str(raw_code))) if numeric else None
        description = body.get("description")
        if not isinstance(description, str) or not description:
            description = known.description if known else f"linkmobility: HTTP {status}"
        code = None if raw_code is None else str(raw_code)
        if known is not None:
            temporary = known.outcome is Outcome.TEMPORARY
        else:
            temporary = status == 429 or status >= 500
        error = TemporaryGatewayError if temporary else PermanentGatewayError
        return error(description, http_status=status, code=code)

    async def aclose(self) -> None:
        await self._http.aclose()
