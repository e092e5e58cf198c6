"""Kannel's ``sendsms`` HTTP interface (smsbox), for agencies that run their own SMSC link.

Request: ``GET`` the configured sendsms URL (``http://host:13013/cgi-bin/sendsms``) with
``username``, ``password``, ``to`` (E.164 with ``+``), ``from`` (the configured source, when set),
``text``, ``charset=UTF-8`` and ``coding=2`` when the text is not GSM-7, so that Kannel sends it
as UCS-2 instead of dropping what GSM-7 cannot carry.

Reply: 202 with ``0: Accepted for delivery`` is sent; ``3: Queued for later delivery`` is sent,
buffered (Kannel holds it in its store and delivers it itself). 503 and transport failures are
temporary; 400, 403 and other 4xx are permanent.

Kannel's ``sendsms`` cannot hold a message until a given time, so this driver cannot schedule.
"""

from __future__ import annotations

import aiohttp

from patronlink.domain.errors import PermanentGatewayError, TemporaryGatewayError
from patronlink.domain.sms_text import encoding
from patronlink.gateways.base import GatewayConfig, OutgoingSms, SendResult
from patronlink.gateways.transport import HttpTransport

ACCEPTED = "0"
QUEUED = "3"


def split_reply(body: str) -> tuple[str | None, str]:
    """``("0", "Accepted for delivery")`` from ``"0: Accepted for delivery"``; no code otherwise."""
    code, sep, text = body.strip().partition(":")
    if sep and code.strip().isdigit():
        return code.strip(), text.strip()
    return None, body.strip()


class KannelGateway:
    """Driver for Kannel's sendsms; see the module docstring for the wire contract."""

    name = "kannel"
    can_schedule = False

    def __init__(self, config: GatewayConfig, client: aiohttp.ClientSession | None = None) -> None:
        self._config = config
        self._http = HttpTransport(self.name, config, client)

    def params(self, message: OutgoingSms) -> dict[str, str]:
        """The query parameters of ``message``."""
        params = {
            "username": self._config.username,
            "password": self._config.password,
            "to": message.to,
        }
        if self._config.source:
            params["from"] = self._config.source
        params["text"] = message.text
        params["charset"] = "UTF-8"
        if encoding(message.text) != "GSM-7":
            params["coding"] = "2"
        return params

    async def send(self, message: OutgoingSms) -> SendResult:
        if message.send_at is not None:
            # Sending now would break the agency's quiet hours; the caller must hold it instead.
            raise PermanentGatewayError("kannel: this gateway cannot schedule messages")
        response = await self._http.request("GET", self._config.url, params=self.params(message))
        status = response.status_code
        code, description = split_reply(response.text)
        if 200 <= status < 300 and code in (ACCEPTED, QUEUED):
            return SendResult(
                gateway_message_id=None,
                buffered=code == QUEUED,
                http_status=status,
                code=code,
                description=description,
            )
        description = description or f"HTTP {status}"
        # A 2xx that is not one of Kannel's two acceptances is a reply we cannot read: retry,
        # as for 5xx. 4xx is Kannel refusing the request itself (credentials, parameters) and a
        # redirect is a wrong URL: staff must look.
        temporary = 200 <= status < 300 or status >= 500 or status == 429
        error = TemporaryGatewayError if temporary else PermanentGatewayError
        raise error(f"kannel: {description}", http_status=status, code=code)

    async def aclose(self) -> None:
        await self._http.aclose()
