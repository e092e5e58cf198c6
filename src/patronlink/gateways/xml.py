"""The XML gateway family (Computopic, SureSMS): docs/interfaces/sms-gateways.md.

GatewayAPI is not in this family: its documented API is JSON at ``/rest/mtsms`` (the
``gatewayapi`` driver).

Request: ``POST`` to the agency's URL, form-encoded ``user``, ``pass``, ``number``, ``message``,
``charset=UTF-8`` and, only for a scheduled message, ``sendtiming=yyyyMMddHHmm`` in the agency's
time zone. ``number`` is digits only: the national number for the agency's own country, country
code and number otherwise.

Reply: ``<root><msg_id/><status><statusline><code/><description/></statusline></status></root>``
declared ``iso-8859-1``. Code 0 is sent, 1042 buffered, the rest classified by
``patronlink.domain.gateway_codes``. HTTP 5xx/429, timeouts and refused connections are
temporary. A 2xx whose body is not that XML is sent, with the reply kept and a warning logged:
the gateway took the request, and sending it again would text the patron twice. The reply is
parsed by defusedxml with DTDs forbidden, so a reply that declares entities is refused as
malformed before anything is expanded.
"""

from __future__ import annotations

import datetime as dt
import logging
import re

# Only for ParseError: parsing itself is defusedxml's.
import xml.etree.ElementTree as ET
from zoneinfo import ZoneInfo

import aiohttp
import defusedxml
import defusedxml.ElementTree
import phonenumbers

from patronlink.domain.errors import PermanentGatewayError, TemporaryGatewayError
from patronlink.domain.gateway_codes import Outcome, xml_code
from patronlink.domain.phone import national_digits
from patronlink.gateways.base import GatewayConfig, OutgoingSms, SendResult
from patronlink.gateways.transport import HttpTransport

log = logging.getLogger("patronlink.gateways.xml")


class MalformedReply(Exception):
    """The reply is not the XML the spec describes."""


def sendtiming(send_at: dt.datetime, timezone: str) -> str:
    """``send_at`` as the spec's ``yyyyMMddHHmm`` wall-clock time in ``timezone``."""
    return send_at.astimezone(ZoneInfo(timezone)).strftime("%Y%m%d%H%M")


# The spec's reply, exactly: no DTD, no entity or character references, no CDATA, no comments.
# A reply of this shape is read without building a tree; any other goes to the XML parser.
_PLAIN_REPLY = re.compile(
    rb"""\s*(?:<\?xml\s+version\s*=\s*["']1\.0["']"""
    rb"""(?:\s+encoding\s*=\s*["'](?P<enc>[A-Za-z0-9._-]+)["'])?\s*\?>)?\s*"""
    rb"<root>\s*(?:<msg_id>(?P<id>[^<&]*)</msg_id>|<msg_id\s*/>)?\s*<status>\s*<statusline>\s*"
    rb"<code>\s*(?P<code>-?[0-9]{1,9})\s*</code>\s*"
    rb"(?:<description>(?P<desc>[^<&]*)</description>|<description\s*/>)?\s*"
    rb"</statusline>\s*</status>\s*</root>\s*"
)


def _plain_reply(content: bytes) -> tuple[int, str, str | None] | None:
    match = _PLAIN_REPLY.fullmatch(content)
    if match is None:
        return None
    encoding = (match["enc"] or b"utf-8").decode("ascii")
    try:
        description = (match["desc"] or b"").decode(encoding).strip()
        msg_id = (match["id"] or b"").decode(encoding).strip() or None
    except (LookupError, UnicodeDecodeError):
        return None  # let the parser give the precise error
    return int(match["code"]), description, msg_id


def parse_reply(content: bytes) -> tuple[int, str, str | None]:
    """``(code, description, msg_id)`` from a reply body; ``MalformedReply`` when it is not one.

    Bytes go to the parser so that the declared encoding (iso-8859-1 in the spec) is honoured.
    The spec's plain shape is matched directly first: it is every reply a working gateway
    sends, and reading it costs a fraction of parsing (``bench/dispatch.py``).
    """
    plain = _plain_reply(content)
    if plain is not None:
        return plain
    try:
        root = defusedxml.ElementTree.fromstring(content, forbid_dtd=True)
    except (ET.ParseError, defusedxml.DefusedXmlException) as exc:
        raise MalformedReply(f"reply is not well-formed XML without DTD ({exc})") from exc
    code_text = root.findtext("status/statusline/code")
    if code_text is None:
        raise MalformedReply("reply has no status/statusline/code")
    try:
        code = int(code_text.strip())
    except ValueError as exc:
        raise MalformedReply(f"reply code {code_text.strip()[:20]!r} is not a number") from exc
    description = (root.findtext("status/statusline/description") or "").strip()
    msg_id = (root.findtext("msg_id") or "").strip() or None
    return code, description, msg_id


class XmlGateway:
    """Driver for the XML family; see the module docstring for the wire contract."""

    name = "xml"
    can_schedule = True

    def __init__(self, config: GatewayConfig, client: aiohttp.ClientSession | None = None) -> None:
        self._config = config
        self._http = HttpTransport(self.name, config, client)

    def form(self, message: OutgoingSms) -> dict[str, str]:
        """The form fields of ``message``, in the spec's order."""
        fields = {
            "user": self._config.username,
            "pass": self._config.password,
            "number": self._number(message.to),
            "message": message.text,
            "charset": "UTF-8",
        }
        if message.send_at is not None:
            fields["sendtiming"] = sendtiming(message.send_at, self._config.timezone)
        return fields

    def _number(self, e164: str) -> str:
        try:
            return national_digits(e164, self._config.country_code)
        except phonenumbers.NumberParseException as exc:
            # E.164 in shape but no country behind it: no gateway will ever take it.
            raise PermanentGatewayError(f"xml: cannot send to {e164}: {exc}") from exc

    async def send(self, message: OutgoingSms) -> SendResult:
        response = await self._http.request("POST", self._config.url, data=self.form(message))
        status = response.status_code
        if status >= 500 or status == 429:
            raise TemporaryGatewayError(f"xml: HTTP {status}", http_status=status)
        try:
            code, description, msg_id = parse_reply(response.content)
        except MalformedReply as exc:
            if 200 <= status < 300:
                # The gateway took the request; a reply we cannot read is no reason to text the
                # patron twice. Kept as it came, for staff to see.
                log.warning(
                    "xml: unrecognised 2xx reply taken as sent",
                    extra={"http_status": status, "reply": response.text[:200]},
                )
                return SendResult(
                    gateway_message_id=None,
                    http_status=status,
                    description=response.text.strip()[:2000] or f"HTTP {status}",
                )
            # Any other status without a code is a wrong URL or refused credentials.
            raise PermanentGatewayError(f"xml: HTTP {status}, {exc}", http_status=status) from exc
        known = xml_code(code)
        description = description or known.description
        if known.outcome in (Outcome.SENT, Outcome.BUFFERED):
            return SendResult(
                gateway_message_id=msg_id,
                buffered=known.outcome is Outcome.BUFFERED,
                http_status=status,
                code=str(code),
                description=description,
            )
        if known.outcome is Outcome.TEMPORARY:
            raise TemporaryGatewayError(description, http_status=status, code=str(code))
        raise PermanentGatewayError(description, http_status=status, code=str(code))

    async def aclose(self) -> None:
        await self._http.aclose()
