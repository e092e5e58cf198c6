"""Kannel's ``sendsms`` HTTP interface (smsbox), for agencies that run their own SMSC link.

Request: ``GET`` the configured sendsms URL (``http://host:13013/cgi-bin/sendsms``) with
``username``, ``password``, ``to`` (E.164 with ``+``), ``from`` (the configured source, when set),
``text``, ``charset=UTF-8`` and ``coding=2`` when the text is not GSM-7, so that Kannel sends it
as UCS-2 instead of dropping what GSM-7 cannot carry.

Delivery reports: with a public URL and a message id, the request adds ``dlr-mask=31`` (every
report type) and a ``dlr-url`` back to ``GET /sms/dlr/kannel/{agency}`` that carries the message
id, an HMAC of it keyed with the sendsms password (no password in any URL) and Kannel's escapes
``%d`` (report type), ``%T`` (its time) and ``%A`` (the SMSC's words).

Reply: 202 with ``0: Accepted for delivery`` is sent; ``3: Queued for later delivery`` is sent,
buffered (Kannel holds it in its store and delivers it itself). Any other 2xx (older releases
answer ``Sent.``) is sent too, with the reply kept and a warning logged: Kannel took the request,
and sending it again would text the patron twice. 503 and transport failures are temporary; 400,
403 and other 4xx are permanent.

Kannel's ``sendsms`` cannot hold a message until a given time, so this driver cannot schedule.
"""

from __future__ import annotations

import logging
from urllib.parse import urlencode

import aiohttp

from patronlink.domain.delivery import KANNEL_DLR_MASK, kannel_signature
from patronlink.domain.errors import PermanentGatewayError, TemporaryGatewayError
from patronlink.domain.sms_text import encoding
from patronlink.gateways.base import GatewayConfig, OutgoingSms, SendResult, callback_url
from patronlink.gateways.transport import HttpTransport

ACCEPTED = "0"
QUEUED = "3"

log = logging.getLogger("patronlink.gateways.kannel")


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
        dlr_url = self.dlr_url(message)
        if dlr_url is not None:
            params["dlr-mask"] = str(KANNEL_DLR_MASK)
            params["dlr-url"] = dlr_url
        return params

    def dlr_url(self, message: OutgoingSms) -> str | None:
        """Where Kannel reports on ``message``; None when no report can come back."""
        if message.message_id is None or not self._config.public_url:
            return None
        signature = kannel_signature(
            self._config.password, self._config.agency_id, message.message_id
        )
        # Kannel's escapes must reach it as they are: they are replaced when it reports.
        query = urlencode({"id": message.message_id, "sig": signature}, safe="")
        return f"{callback_url(self._config, 'dlr', 'kannel')}?{query}&type=%d&at=%T&reply=%A"

    async def send(self, message: OutgoingSms) -> SendResult:
        if message.send_at is not None:
            # Sending now would break the agency's quiet hours; the caller must hold it instead.
            raise PermanentGatewayError("kannel: this gateway cannot schedule messages")
        params = self.params(message)
        response = await self._http.request("GET", self._config.url, params=params)
        status = response.status_code
        code, description = split_reply(response.text)
        reports = "dlr-url" in params
        if 200 <= status < 300:
            if code not in (ACCEPTED, QUEUED):
                # Kannel took the request (older releases answer "Sent."): sending it again
                # would text the patron twice. Kept as it came, for staff to see.
                log.warning(
                    "kannel: unrecognised 2xx reply taken as sent",
                    extra={"http_status": status, "reply": response.text[:200]},
                )
                description = response.text.strip()[:2000] or f"HTTP {status}"
            return SendResult(
                gateway_message_id=None,
                buffered=code == QUEUED,
                http_status=status,
                code=code,
                description=description,
                reports_expected=reports,
            )
        description = description or f"HTTP {status}"
        # 4xx is Kannel refusing the request itself (credentials, parameters) and a redirect is
        # a wrong URL: staff must look.
        temporary = status >= 500 or status == 429
        error = TemporaryGatewayError if temporary else PermanentGatewayError
        raise error(f"kannel: {description}", http_status=status, code=code)

    async def aclose(self) -> None:
        await self._http.aclose()
