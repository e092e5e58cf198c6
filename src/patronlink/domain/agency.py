"""Agencies (libraries), named by ISIL (ISO 15511), and their branches."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from patronlink.domain.errors import ValidationError

# ISO 15511: a prefix (country code or other), a hyphen, and up to 11 characters.
_ISIL = re.compile(r"[A-Z]{1,4}-[A-Za-z0-9:/-]{1,11}", re.ASCII)
_BARE_NUMBER = re.compile(r"[A-Za-z0-9:/]{1,11}", re.ASCII)


class Language(StrEnum):
    DA = "da"
    EN = "en"


@dataclass(frozen=True, slots=True)
class Branch:
    code: str
    name: str


@dataclass(frozen=True, slots=True)
class Agency:
    id: str
    name: str
    timezone: str = "Europe/Copenhagen"
    language: Language = Language.DA
    country_code: str = "45"
    branches: tuple[Branch, ...] = field(default_factory=tuple)

    @property
    def number(self) -> str:
        """The ISIL without its prefix: ``DK-761500`` is also addressable as ``761500``."""
        return isil_number(self.id)

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


def validate_isil(value: str) -> str:
    """Return the ISIL with its prefix upper-cased, or raise ``ValidationError``."""
    candidate = value.strip()
    prefix, sep, rest = candidate.partition("-")
    if prefix.isascii():  # upper() of non-ASCII letters can make ASCII ones ("ß" -> "SS")
        candidate = f"{prefix.upper()}{sep}{rest}"
    if not _ISIL.fullmatch(candidate):
        raise ValidationError(
            f"{value!r} is not an ISIL agency id (expected a prefix, a hyphen and up to 11 "
            "characters, such as DK-761500)",
            field="id",
        )
    return candidate


def isil_number(isil: str) -> str:
    return isil.split("-", 1)[1]


def is_bare_number(value: str) -> bool:
    """True for an agency reference without its ISIL prefix, such as ``761500``."""
    return "-" not in value and bool(_BARE_NUMBER.fullmatch(value))


def validate_timezone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValidationError(f"unknown time zone {name!r}", field="timezone") from exc
    return name


def validate_country_code(value: str) -> str:
    """A country calling code, digits only, such as ``45``."""
    digits = value.strip().lstrip("+")
    if not (digits.isascii() and digits.isdigit()) or not 1 <= len(digits) <= 3:
        raise ValidationError(
            f"{value!r} is not a country calling code (1-3 digits, such as 45)",
            field="country_code",
        )
    return digits
