"""The reply codes of the SMS gateways, with their spec text and what each means for a message.

Source: the providers' published code lists, summarised in ``docs/interfaces/sms-gateways.md``
(the XML/form family's reply codes, LINK Mobility's error statuses). The descriptions are the
spec's, word for word: staff see them on the error queue when a gateway sends a code without a
text of its own.

Classes (``docs/interfaces/sms-gateways.md`` gives each family's table of replies and outcomes):

* ``SENT``: the gateway took the message.
* ``BUFFERED``: the gateway took it for later delivery (XML 1042). It counts as sent and must
  never be sent again, or the patron gets it twice.
* ``TEMPORARY``: the provider is unavailable now; retry with backoff.
* ``PERMANENT``: retrying the same request cannot help; the message goes to the error queue.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final


class Outcome(enum.Enum):
    """What a gateway reply means for the message that was sent."""

    SENT = "sent"
    BUFFERED = "buffered"
    TEMPORARY = "temporary"
    PERMANENT = "permanent"


@dataclass(frozen=True, slots=True)
class GatewayCode:
    """One reply code of a gateway family, its spec description and its outcome."""

    code: int
    description: str
    outcome: Outcome


_XML_DESCRIPTIONS: Final = {
    0: "SMS afsendt.",  # the spec's example of a successful reply
    1001: "Invalid username and/or password.",
    1002: "Invalid phone number specified.",
    1003: "A sender alias is not allowed along with a price.",
    1004: "Message is too long.",
    1005: "Unable to process message.",
    1006: "Invalid country code specified.",
    1007: "No gate specified.",
    1008: "Sender alias is too long.",
    1009: "Specified sender alias not allowed.",
    1010: "No sender alias is allowed for user.",
    1011: "No price is allowed for user.",
    1012: "Invalid price specified.",
    1013: "Invalid timing timestamp.",
    1014: "Timing timestamp already expired.",
    1015: "Timing timestamp not allowed along with by-pass queue.",
    1016: "By-pass queue not allowed for user.",
    1017: "Provider(s) not responding.",
    1018: "Unspecified error.",
    1019: "Invalid short code.",
    1020: "Price specified without shortcode.",
    1021: "Not all mandatory variables set.",
    1022: "Unsupported variables attempted set.",
    1023: "Invalid callbackurl.",
    1024: "Gate not found.",
    1025: "Price/donation not allowed on short code.",
    1026: "Bulk messaging not allowed for country.",
    1027: "Message could not be delivered.",
    1028: "Rejected by provider.",
    1029: "Provider temporarily unavailable.",
    1030: "Unknown subscriber.",
    1031: "Invalid message ID.",
    1032: "Callbackurl set without message ID.",
    1033: "Invalid WAP URL.",
    1034: "Donation not allowed.",
    1035: "Donation specified without price.",
    1036: "WAP message too long. 220 characters maximum.",
    1037: "SMS price not established.",
    1038: "Call from non-approved server.",
    1039: "WAP URL not allowed with binary data.",
    1040: "Invalid port.",
    1041: "Message must be hex values when port is set.",
    1042: "Buffered, e.g. because phone is off.",
    1043: "Invalid port.",
    1044: "Message must be binary.",
    1045: "Binary messages not available.",
    1046: "Gateway temporarily unavailable.",
    1047: "Invalid message category.",
    1048: "Invalid charset",  # sic: the spec has no full stop here
}
_XML_OUTCOMES: Final = {
    0: Outcome.SENT,
    1042: Outcome.BUFFERED,
    1017: Outcome.TEMPORARY,
    1029: Outcome.TEMPORARY,
    1046: Outcome.TEMPORARY,
}

_LINKMOBILITY_DESCRIPTIONS: Final = {
    101100: "Invalid authentication. Please check your username and password.",
    101101: "Access denied. Please check your username and password.",
    106000: "Unknown Error. Please contact Support and include your whole transaction.",
    106001: "Parse Error. The object to send in the request is badly formatted.",
    106102: "Unable to access SMSC credentials",
    106200: "Invalid or missing platformId. Please check your platformId.",
    106201: "Invalid or missing platformPartnerId. Please check your platformPartnerId.",
    106202: "Invalid or missing currency for premium message. Please check your price and currency",
    106300: "No gates available. Please contact Support and include your whole transaction.",
    106301: "Specified gate unavailable. Please check your gateId.",
}
# 106000 "Unknown Error" is retried: it is what LINK answers when its own backend fails.
_LINKMOBILITY_TEMPORARY: Final = frozenset({106000, 106300, 106301})

XML_CODES: Final[Mapping[int, GatewayCode]] = MappingProxyType(
    {
        code: GatewayCode(code, text, _XML_OUTCOMES.get(code, Outcome.PERMANENT))
        for code, text in _XML_DESCRIPTIONS.items()
    }
)
LINKMOBILITY_CODES: Final[Mapping[int, GatewayCode]] = MappingProxyType(
    {
        code: GatewayCode(
            code,
            text,
            Outcome.TEMPORARY if code in _LINKMOBILITY_TEMPORARY else Outcome.PERMANENT,
        )
        for code, text in _LINKMOBILITY_DESCRIPTIONS.items()
    }
)


def xml_code(code: int) -> GatewayCode:
    """The XML-family code; one the spec does not list is a permanent error.

    The spec: "All other codes than 0 is interpreted as an error", so an unknown code is never
    taken as sent, and as nothing says it will pass later, it is not retried either.
    """
    known = XML_CODES.get(code)
    if known is not None:
        return known
    return GatewayCode(code, f"Unknown gateway code {code}.", Outcome.PERMANENT)


def linkmobility_code(status: int) -> GatewayCode | None:
    """The LINK Mobility error ``status``, or None when the spec does not list it.

    Unknown statuses are classified by the HTTP status of the reply instead (the driver does that).
    """
    return LINKMOBILITY_CODES.get(status)
