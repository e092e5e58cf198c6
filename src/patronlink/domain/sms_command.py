"""The inbound SMS command: ``<prefix> forny alle`` or ``<prefix> forny <item number>``.

Exactly three words after trimming, compared without regard to case. The first word is the SMS
provider's routing prefix and is ignored; the second must be ``forny``; the third is ``alle`` or
an item number.
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_TEXT = 480  # three concatenated GSM parts; anything longer is not a command


@dataclass(frozen=True, slots=True)
class RenewAll:
    prefix: str

    def describe(self) -> str:
        return "renew all"


@dataclass(frozen=True, slots=True)
class RenewItem:
    prefix: str
    item_number: str

    def describe(self) -> str:
        return f"renew {self.item_number}"


@dataclass(frozen=True, slots=True)
class NotUnderstood:
    """Anything else; ``prefix`` is the first word the patron used, for the help reply."""

    prefix: str | None


Command = RenewAll | RenewItem | NotUnderstood


def parse(text: str) -> Command:
    words = text.split()  # any run of whitespace, leading and trailing ignored
    prefix = words[0] if words else None
    if len(text) > MAX_TEXT or len(words) != 3 or words[1].casefold() != "forny":
        return NotUnderstood(prefix[:20] if prefix else None)
    assert prefix is not None
    target = words[2]
    if target.casefold() == "alle":
        return RenewAll(prefix)
    if len(target) > 64 or not target.isprintable():
        return NotUnderstood(prefix)
    return RenewItem(prefix, target)
