"""Senders as the gateways allow them: LINK Mobility's type of number (TON) and its rules.

From LINK's "SMS REST API - MT and Delivery Reports" 1.18, "TON": a SHORTNUMBER is 1-14 digits,
ALPHANUMERIC up to 11 GSM characters (a-z, A-Z, 0-9 are safe: some operators and handsets refuse
others), MSISDN a mobile number in international format starting with ``+``. GatewayAPI's sender is
"up to 11 alphanumeric characters, or 15 digits".
"""

from __future__ import annotations

import re
from typing import Final

from patronlink.domain.errors import ValidationError

TONS: Final = ("ALPHANUMERIC", "SHORTNUMBER", "MSISDN")
_RULES: Final = {
    "SHORTNUMBER": (re.compile(r"[0-9]{1,14}"), "1-14 digits"),
    "ALPHANUMERIC": (re.compile(r"[A-Za-z0-9 ]{1,11}"), "up to 11 letters a-z, A-Z or digits"),
    "MSISDN": (re.compile(r"\+[1-9][0-9]{6,14}"), "+ and the international number"),
}
_GATEWAYAPI: Final = re.compile(r"[A-Za-z0-9 ]{1,11}|[0-9]{1,15}")


def linkmobility_ton(source: str) -> str:
    """The TON LINK should read ``source`` as: MSISDN for ``+digits``, SHORTNUMBER for digits."""
    if source.startswith("+"):
        return "MSISDN"
    if source.isascii() and source.isdigit():
        return "SHORTNUMBER"
    return "ALPHANUMERIC"


def check_linkmobility_source(source: str, ton: str | None) -> str:
    """The TON of ``source`` (``ton`` or the one it looks like); ``ValidationError`` otherwise."""
    chosen = ton or linkmobility_ton(source)
    if chosen not in _RULES:
        raise ValidationError(f"source_ton must be one of {', '.join(TONS)}", field="source_ton")
    pattern, rule = _RULES[chosen]
    if not pattern.fullmatch(source):
        raise ValidationError(
            f"LINK Mobility takes a sender of type {chosen} as {rule}, not {source!r}",
            field="source",
        )
    return chosen


def check_gatewayapi_sender(source: str) -> None:
    if not _GATEWAYAPI.fullmatch(source):
        raise ValidationError(
            f"GatewayAPI takes a sender of up to 11 letters or digits, or 15 digits, "
            f"not {source!r}",
            field="source",
        )
