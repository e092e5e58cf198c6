"""GatewayAPI's REST API (gatewayapi.com, "REST API" in its published docs).

Request: ``POST {url}/rest/mtsms`` with a JSON body::

    {"sender": "HorsensBib", "message": "...", "recipients": [{"msisdn": 4552903991}],
     "userref": "1234", "callback_url": ".../sms/dlr/gatewayapi/DK-761500",
     "encoding": "UCS2", "sendtime": 1764500000}

``userref`` (our message id) comes back in the status callback; ``callback_url`` only when the
server has a public URL; ``encoding`` only when the text is not GSM-7 (GatewayAPI's default is
GSM 03.38 and it would drop the rest); ``sendtime`` (Unix seconds) only for a scheduled text.
The API token goes as the username of HTTP Basic auth, one of the three ways the docs allow, and
the one that keeps it out of every URL.

Reply: 200 with ``{"ids": [421332671], ...}`` is sent; any other 2xx is sent too, with the reply
kept and a warning logged (GatewayAPI took the request: sending again would text twice). Errors
carry ``{"code": "0x0216", "message": "Insufficient credit", "variables": [...]}``; the docs give
each API error its HTTP status, so the status classifies: 429 and 5xx temporary (500 is "can't
be processed due to an exception"), 400/401/403/422 and other 4xx permanent (arguments, token, IP
address, credit: staff must act).
"""

from __future__ import annotations

import json
import logging
from typing import Any

import aiohttp

from patronlink.domain.errors import PermanentGatewayError, TemporaryGatewayError
from patronlink.domain.sms_text import encoding
from patronlink.gateways.base import GatewayConfig, OutgoingSms, SendResult, callback_url
from patronlink.gateways.transport import HttpReply, HttpTransport

log = logging.getLogger("patronlink.gateways.gatewayapi")

MTSMS_PATH = "/rest/mtsms"


def _json_object(response: HttpReply) -> dict[str, Any]:
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return {}
    return body if isinstance(body, dict) else {}


def error_text(body: dict[str, Any]) -> str | None:
    """GatewayAPI's error message with its ``%1``, ``%2`` filled from ``variables``."""
    message = body.get("message")
    if not isinstance(message, str) or not message:
        return None
    variables = body.get("variables")
    if isinstance(variables, list):
        # From the highest number down, so that %1 does not eat the start of %10.
        for index in range(len(variables), 0, -1):
            message = message.replace(f"%{index}", str(variables[index - 1]))
    return message


class GatewayApiGateway:
    """Driver for GatewayAPI's REST API; see the module docstring for the wire contract."""

    name = "gatewayapi"
    can_schedule = True

    def __init__(self, config: GatewayConfig, client: aiohttp.ClientSession | None = None) -> None:
        self._config = config
        self._http = HttpTransport(self.name, config, client)
        base = config.url.rstrip("/")
        self._url = base if base.endswith(MTSMS_PATH) else base + MTSMS_PATH

    @property
    def url(self) -> str:
        return self._url

    def body(self, message: OutgoingSms) -> dict[str, Any]:
        """The JSON body of ``message``."""
        body: dict[str, Any] = {
            "sender": self._config.source,
            "message": message.text,
            "recipients": [{"msisdn": int(message.to.lstrip("+"))}],
        }
        if not self._config.source:
            del body["sender"]
        if encoding(message.text) != "GSM-7":
            body["encoding"] = "UCS2"
        if message.message_id is not None:
            body["userref"] = str(message.message_id)
        if self._config.public_url:
            body["callback_url"] = callback_url(self._config, "dlr", "gatewayapi")
        if message.send_at is not None:
            body["sendtime"] = int(message.send_at.timestamp())
        return body

    async def send(self, message: OutgoingSms) -> SendResult:
        response = await self._http.request(
            "POST", self._url, json=self.body(message), auth=(self._config.token, "")
        )
        status = response.status_code
        body = _json_object(response)
        reports = bool(self._config.public_url)
        if 200 <= status < 300:
            ids = body.get("ids")
            if isinstance(ids, list) and ids and isinstance(ids[0], int | str):
                return SendResult(
                    gateway_message_id=str(ids[0]), http_status=status, reports_expected=reports
                )
            log.warning(
                "gatewayapi: 2xx reply without ids taken as sent",
                extra={"http_status": status, "reply": response.text[:200]},
            )
            return SendResult(
                gateway_message_id=None,
                http_status=status,
                description=response.text.strip()[:2000] or f"HTTP {status}",
                reports_expected=reports,
            )
        code = body.get("code")
        code_text = code if isinstance(code, str) else None
        description = error_text(body) or f"gatewayapi: HTTP {status}"
        temporary = status == 429 or status >= 500
        error = TemporaryGatewayError if temporary else PermanentGatewayError
        raise error(description, http_status=status, code=code_text)

    async def aclose(self) -> None:
        await self._http.aclose()
