"""The SMS gateway port: what services hand to a driver and what they get back.

A driver either returns a ``SendResult`` (the gateway took the message: sent, or buffered for
later delivery) or raises ``TemporaryGatewayError`` / ``PermanentGatewayError`` from
``patronlink.domain.errors``. It never raises anything else for a gateway's answer or for a
network failure; a bug in the caller (a naive ``send_at``) is a ``ValueError`` at construction.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from typing import Protocol

from patronlink.domain.errors import InvalidPhoneNumber

_E164 = re.compile(r"\+[1-9][0-9]{1,14}")


@dataclass(frozen=True, slots=True)
class OutgoingSms:
    """One text to one number.

    ``to`` is E.164 (``+4552903991``). ``send_at`` is set only when the gateway itself should
    hold the message until then (quiet hours); it must be timezone-aware.
    """

    to: str
    text: str
    send_at: dt.datetime | None = None
    # Our id of the text, echoed back in delivery reports (LINK refId, GatewayAPI userref,
    # Kannel's dlr-url). None where nobody will report (the console, tests).
    message_id: int | None = None

    def __post_init__(self) -> None:
        if not _E164.fullmatch(self.to):
            raise InvalidPhoneNumber(f"{self.to!r} is not an E.164 number", field="to")
        if self.send_at is not None and self.send_at.utcoffset() is None:
            raise ValueError("send_at must be timezone-aware")


@dataclass(frozen=True, slots=True)
class GatewayConfig:
    """One agency's gateway settings, secrets already resolved.

    ``country_code`` (``"45"``) and ``timezone`` (``"Europe/Copenhagen"``) are the agency's: the
    XML family gets national numbers for that country and ``sendtiming`` in that zone.
    """

    driver: str
    url: str = ""
    username: str = ""
    # Kept out of repr so that logging a config never prints the secret.
    password: str = field(default="", repr=False)
    platform_id: str = ""
    platform_partner_id: str = ""
    source: str = ""
    country_code: str = "45"
    timezone: str = "Europe/Copenhagen"
    connect_timeout: float = 5.0
    read_timeout: float = 15.0
    # Delivery reports and provider callbacks (issue 16). ``public_url`` is where providers reach
    # this server (PATRONLINK_PUBLIC_URL); empty means no callback URL can be given out.
    agency_id: str = ""
    public_url: str = ""
    token: str = field(default="", repr=False)  # GatewayAPI's API token
    webhook_secret: str = field(default="", repr=False)  # GatewayAPI's JWT secret
    dlr_gate_id: str = ""  # LINK: the gate delivery reports go to; empty asks for none
    source_ton: str = ""  # LINK: ALPHANUMERIC | SHORTNUMBER | MSISDN; empty: from the source


@dataclass(frozen=True, slots=True)
class SendResult:
    """The gateway took the message.

    ``buffered`` means it was accepted for later delivery (XML 1042, Kannel "3: Queued"): it counts
    as sent and must not be sent again. The other fields are the gateway's answer, for the record
    of attempts.
    """

    gateway_message_id: str | None
    buffered: bool = False
    http_status: int | None = None
    code: str | None = None
    description: str | None = None
    # The provider will send a delivery report for this text (the message is then ``pending``).
    reports_expected: bool = False


def callback_url(config: GatewayConfig, kind: str, provider: str) -> str:
    """The URL a provider calls back on for this agency: ``{public}/sms/{kind}/{provider}/{id}``."""
    return f"{config.public_url.rstrip('/')}/sms/{kind}/{provider}/{config.agency_id}"


class SmsGateway(Protocol):
    """A driver for one gateway family, bound to one agency's ``GatewayConfig``.

    ``can_schedule`` says whether the gateway accepts ``send_at``; a driver that cannot schedule
    refuses a message that carries one (``PermanentGatewayError``) rather than send it early, so
    the caller must hold such messages itself until they are due.
    """

    name: str
    can_schedule: bool

    async def send(self, message: OutgoingSms) -> SendResult: ...

    async def aclose(self) -> None: ...
