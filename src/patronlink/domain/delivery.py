"""Delivery reports: what each provider's report means for a text, and how reports combine.

A text that a gateway took is ``sent``; whether it reached the phone is its *delivery*::

    none       the driver or the agency asks for no reports
    pending    sent, a report is expected (intermediate reports keep it here)
    delivered  final: the phone has it
    failed     final: the operator gave up (unknown subscriber, expired, ...): the error queue

Reports arrive out of order, twice, and even before the send's own outcome is recorded. So a
report never moves a text out of a final state (``delivered``/``failed``), and the send's outcome
(``pending`` or ``none``) never overwrites a report that came first. The first final report wins.

The provider tables are data, from each provider's published documentation:

* LINK Mobility: "SMS REST API - MT and Delivery Reports" 1.18, "Result Codes" (FINAL/TEMP).
* Kannel: the user guide's ``dlr-mask`` bits (1 delivered to phone, 2 non-delivered to phone,
  4 queued on SMSC, 8 delivered to SMSC, 16 non-delivered to SMSC).
* GatewayAPI: REST docs, "States and status codes" (final states are boxes in its diagram).
"""

from __future__ import annotations

import datetime as dt
import hmac
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import Final


class Delivery(StrEnum):
    NONE = "none"
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


FINAL: Final = frozenset({Delivery.DELIVERED, Delivery.FAILED})


def after_report(current: Delivery, incoming: Delivery) -> Delivery:
    """The delivery state once a report saying ``incoming`` arrives for a text in ``current``.

    A final state is never left (duplicates and late intermediate reports change nothing); an
    intermediate report (``pending``) on a text sent without reports expected still says a
    report is coming.
    """
    if current in FINAL:
        return current
    return incoming


def after_send(current: Delivery, reports_expected: bool) -> Delivery:
    """The delivery state once the send's outcome is recorded: a report that came first stays."""
    if current is not Delivery.NONE:
        return current
    return Delivery.PENDING if reports_expected else Delivery.NONE


@dataclass(frozen=True, slots=True)
class Report:
    """One provider report, read: which of our texts, what it now means, and the provider's words.

    ``message_id`` is our id (LINK's ``refId``, GatewayAPI's ``userref``, Kannel's ``dlr-url``);
    None when the report names none of ours (LINK's published examples use ``"0"``).
    """

    message_id: int | None
    state: Delivery
    code: str
    description: str
    at: dt.datetime | None = None


@dataclass(frozen=True, slots=True)
class ReportCode:
    code: str
    description: str
    state: Delivery


def _table(rows: dict[str | int, tuple[str, Delivery]]) -> MappingProxyType[str, ReportCode]:
    return MappingProxyType(
        {str(code): ReportCode(str(code), text, state) for code, (text, state) in rows.items()}
    )


_P, _D, _F = Delivery.PENDING, Delivery.DELIVERED, Delivery.FAILED

# LINK's "Transaction State": FINAL DELIVERED -> delivered, TEMP -> pending, every other FINAL
# (not delivered, or unknown delivery such as 4 Timeout and 1010) -> failed: staff must look.
LINKMOBILITY_RESULT_CODES: Final = _table(
    {
        0: ("Unknown error", _F),
        1: ("Temporary routing error", _F),
        2: ("Permanent routing error", _F),
        3: ("Maximum throttling exceeded", _F),
        4: ("Timeout", _F),
        5: ("Operator unknown error", _F),
        6: ("Operator error", _F),
        104: ("Configuration error", _F),
        105: ("Internal error (internal Link Mobility error)", _F),
        1000: ("Sent (to operator)", _P),
        1001: ("Billed and delivered", _D),
        1002: ("Expired", _F),
        1003: ("Deleted", _F),
        1004: ("Mobile full", _F),
        1005: ("Queued", _P),
        1006: ("Not delivered", _F),
        1007: ("Delivered, Billed delayed", _D),
        1008: ("Billed OK (charged OK before sending message)", _P),
        1009: ("Billed OK and NOT Delivered", _F),
        1010: ("Expired, absence of operator delivery report", _F),
        1011: ("Billed OK and sent (to operator)", _P),
        1012: ("Delayed (temporary billing error, system will try to resend)", _P),
        1013: ("Message sent to operator, Bill delayed", _P),
        2000: ("Invalid source, the specified source number or Alpha is invalid", _F),
        2001: ("Source shortnumber not supported", _F),
        2002: ("Source alpha not supported", _F),
        2003: ("Source MSISDN not supported", _F),
        2100: ("Destination shortnumber not supported", _F),
        2101: ("Destination alpha not supported", _F),
        2102: ("Destination MSISDN not supported", _F),
        2103: ("Operation blocked", _F),
        2104: ("Unknown subscriber", _F),
        2105: ("Destination blocked (subscriber permanently barred)", _F),
        2106: ("Number error", _F),
        2107: ("Destination temporarily blocked (subscriber temporarily barred)", _F),
        2200: ("Charging error", _F),
        2201: ("Subscriber has low balance", _F),
        2202: ("Subscriber barred for overcharged (premium) messages", _F),
        2203: ("Subscriber too young (for this particular content)", _F),
        2204: ("Prepaid subscriber not allowed", _F),
        2205: ("Service rejected by subscriber", _F),
        2206: ("Subscriber not registered in payment system", _F),
        2207: ("Subscriber has reached max balance", _F),
        3000: ("GSM encoding is not supported", _F),
        3001: ("UCS2 encoding is not supported", _F),
        3002: ("Binary encoding is not supported", _F),
        4000: ("Delivery report is not supported", _F),
        4001: ("Invalid message content", _F),
        4002: ("Invalid tariff", _F),
        4003: ("Invalid user data", _F),
        4004: ("Invalid user data header", _F),
        4005: ("Invalid data coding", _F),
        4006: ("Invalid VAT", _F),
        4007: ("Unsupported content for destination", _F),
    }
)

KANNEL_DLR_TYPES: Final = _table(
    {
        1: ("Delivered to phone", _D),
        2: ("Non-delivered to phone", _F),
        4: ("Queued on SMSC", _P),
        8: ("Delivered to SMSC", _P),
        16: ("Non-delivered to SMSC", _F),
    }
)
# What Kannel is asked for: every one of the five report types (1 + 2 + 4 + 8 + 16).
KANNEL_DLR_MASK: Final = 31

GATEWAYAPI_STATUSES: Final = _table(
    {
        "UNKNOWN": ("Messages start here", _P),
        "SCHEDULED": ("Held until its send time", _P),
        "BUFFERED": ("Held in GatewayAPI's queue, awaiting the mobile network", _P),
        "ENROUTE": ("Sent to the mobile network, on its way", _P),
        "DELIVERED": ("The phone has confirmed the delivery", _D),
        "EXPIRED": ("Not delivered within its validity period", _F),
        "DELETED": ("Cancelled", _F),
        "UNDELIVERABLE": ("Permanently undeliverable, most likely an invalid number", _F),
        "ACCEPTED": ("The mobile network accepted it on the phone's behalf", _D),
        "REJECTED": ("The mobile network rejected it", _F),
        "SKIPPED": ("Deliberately ignored by network-specific rules", _F),
    }
)


def read_code(table: MappingProxyType[str, ReportCode], code: str) -> ReportCode:
    """The code's meaning; a code the provider's table lacks is taken as intermediate.

    An unknown code must not end a text either way: a later report, or staff, decide.
    """
    found = table.get(code)
    if found is not None:
        return found
    return ReportCode(code, f"Unknown report code {code}", Delivery.PENDING)


def message_id_of(reference: object) -> int | None:
    """Our message id from a provider's echo of it (``"1234"`` or 1234); None otherwise."""
    if isinstance(reference, bool):
        return None
    if isinstance(reference, int):
        return reference if 0 < reference < 2**63 else None
    if isinstance(reference, str) and reference.isascii() and reference.isdigit():
        value = int(reference[:19])
        return value if 0 < value < 2**63 and len(reference) <= 19 else None
    return None


def kannel_signature(secret: str, agency_id: str, message_id: int) -> str:
    """The proof in a Kannel ``dlr-url`` that we made it: an HMAC of the agency and message id.

    Keyed with the agency's sendsms password, which Kannel and patronlink share already, so no
    password travels in any URL and there is no new secret to configure. 32 hex digits (128 bits).
    """
    mac = hmac.new(secret.encode(), f"kannel-dlr:{agency_id}:{message_id}".encode(), "sha256")
    return mac.hexdigest()[:32]
