"""What a text costs as SMS: its encoding, its length in code units and its number of segments.

The rules are GSM 03.38 / 3GPP TS 23.038 as carriers apply them:

* A text is sent as **GSM-7** when every character is in the GSM default alphabet or its extension
  table; otherwise the whole text is sent as **UCS-2** (UTF-16 code units on the wire).
* GSM-7: a character of the basic table is one septet; one of the extension table (``^{}\\[~]|€``
  and form feed) is two (an escape plus the character).
* One SMS carries 160 septets or 70 UTF-16 units. A longer text is split into parts that each lose
  room to the concatenation header: 153 septets or 67 units per part.
* An escape pair or a UTF-16 surrogate pair is never split across two parts (a phone could not put
  the half characters back together), so a part may end one unit short. This is why ``segments``
  packs parts instead of dividing.

An empty text counts as one segment: it is still one message on the wire.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

Encoding = Literal["GSM-7", "UCS-2"]

# The GSM 03.38 default alphabet, in table order (0x00-0x7F). 0x1B is the escape to the extension
# table and is not a character of its own, so it is left out.
GSM7_BASIC: Final = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅå"
    "Δ_ΦΓΛΩΠΨΣΘΞÆæßÉ"
    " !\"#¤%&'()*+,-./"
    "0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNO"
    "PQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmno"
    "pqrstuvwxyzäöñüà"
)
# The extension table: each costs an escape septet plus itself.
GSM7_EXTENSION: Final = frozenset("\f^{}\\[~]|€")
_GSM7_ALL: Final = GSM7_BASIC | GSM7_EXTENSION

SINGLE_GSM7: Final = 160
PART_GSM7: Final = 153
SINGLE_UCS2: Final = 70
PART_UCS2: Final = 67

# Replacement for characters outside the Basic Multilingual Plane (see ``replace_astral``). "?" is
# in the GSM alphabet, so replacing an emoji in an otherwise plain text makes it GSM-7 again and
# cheaper, where U+FFFD would keep the whole text UCS-2.
ASTRAL_REPLACEMENT: Final = "?"


@dataclass(frozen=True, slots=True)
class TextAccount:
    """The cost of a text: its encoding, length in code units (septets or UTF-16 units), parts."""

    encoding: Encoding
    units: int
    segments: int


def encoding(text: str) -> Encoding:
    """``"GSM-7"`` if every character is in the GSM alphabet or its extension, else ``"UCS-2"``."""
    return "GSM-7" if _GSM7_ALL.issuperset(text) else "UCS-2"


def _char_units(text: str, enc: Encoding) -> list[int]:
    """Code units each character takes: escape pairs and surrogate pairs count 2."""
    if enc == "GSM-7":
        return [2 if ch in GSM7_EXTENSION else 1 for ch in text]
    return [2 if ord(ch) > 0xFFFF else 1 for ch in text]


def _pack(char_units: list[int], part_size: int) -> int:
    """Number of parts of ``part_size`` units, never splitting one character's units."""
    parts, used = 1, 0
    for size in char_units:
        if used + size > part_size:
            parts += 1
            used = 0
        used += size
    return parts


def account(text: str) -> TextAccount:
    """The encoding, units and segments of ``text`` as it would go out unchanged."""
    enc = encoding(text)
    # The units are counted without a Python loop over the characters (every reply text is
    # accounted on the hot path of renewal by SMS); the per-character list is needed only to
    # pack a text that takes more than one part.
    if enc == "GSM-7":
        units = len(text) + sum(text.count(ch) for ch in GSM7_EXTENSION.intersection(text))
        single, part = SINGLE_GSM7, PART_GSM7
    else:
        units = len(text.encode("utf-16-le", "surrogatepass")) // 2
        single, part = SINGLE_UCS2, PART_UCS2
    count = 1 if units <= single else _pack(_char_units(text, enc), part)
    return TextAccount(encoding=enc, units=units, segments=count)


def segments(text: str) -> int:
    """How many SMS the text takes (at least 1)."""
    return account(text).segments


def replace_astral(text: str, replacement: str = ASTRAL_REPLACEMENT) -> str:
    """Replace every character that needs 4 bytes in UTF-8 (emoji and other astral characters).

    LINK Mobility rejects or mangles such characters, so its driver sends the text through this.
    Each astral code point becomes one ``replacement``; joiners and variation selectors around
    it (which are in the BMP) are kept as they are.
    """
    return "".join(replacement if ord(ch) > 0xFFFF else ch for ch in text)
