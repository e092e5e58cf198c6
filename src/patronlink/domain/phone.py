"""Phone numbers: every number is stored and compared as E.164 (``+4552903991``).

Parsing is done by ``phonenumbers`` (Google's libphonenumber), the library of the field.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable

import phonenumbers

from patronlink.domain.errors import InvalidPhoneNumber


def region_for_country_code(country_code: str) -> str:
    """The main ISO region of a calling code (``45`` -> ``DK``)."""
    region = phonenumbers.region_code_for_country_code(int(country_code))
    if region == phonenumbers.UNKNOWN_REGION:
        raise InvalidPhoneNumber(f"unknown country calling code {country_code!r}")
    return str(region)


def normalise(raw: str, country_code: str, *, field: str = "phone") -> str:
    """Return ``raw`` as E.164, reading it as a number of ``country_code`` unless it says otherwise.

    Accepted shapes: ``52903991``, ``52 90 39 91``, ``+4552903991``, ``004552903991`` and
    ``4552903991`` (the country code without a prefix, as SMS providers send it).
    """
    text = raw.strip()
    if not text:
        raise InvalidPhoneNumber("phone number is empty", field=field)
    if len(text) > 40:
        raise InvalidPhoneNumber("phone number is longer than 40 characters", field=field)
    quick = _plain_number(text, country_code)
    if quick is not None:
        return quick
    region = region_for_country_code(country_code)
    candidates = [text]
    digits = "".join(ch for ch in text if ch.isdigit())
    if text[0].isdigit() and digits.startswith(country_code) and not digits.startswith("00"):
        # "4552903991": the country code without + or 00; libphonenumber would read it as a
        # national number of the region. Try the international reading as well.
        candidates.append("+" + digits)
    for candidate in candidates:
        try:
            number = phonenumbers.parse(candidate, region)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number(number):
            return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    raise InvalidPhoneNumber(f"{raw!r} is not a valid phone number", field=field)


_PLAIN = re.compile(r"\+?[0-9][0-9 -]*")


@functools.cache
def _reads_plainly(country_code: str) -> bool:
    """Whether the country's numbers are read without a national or carrier prefix to strip."""
    region = region_for_country_code(country_code)
    metadata = phonenumbers.PhoneMetadata.metadata_for_region(region)
    return metadata is not None and metadata.national_prefix_for_parsing is None


def _plain_number(text: str, country_code: str) -> str | None:
    """The common case without a full parse: digits (and spaces, dashes) of the agency's country.

    Returns the E.164 form only when the number is valid; None sends ``normalise`` down the full
    path, which gives the same answer for these shapes, four times slower. An import spends most
    of its time here otherwise.
    """
    if not _PLAIN.fullmatch(text) or not _reads_plainly(country_code):
        return None
    digits = text.replace(" ", "").replace("-", "")
    if digits.startswith("+"):
        if not digits.startswith("+" + country_code):
            return None
        digits = digits[1 + len(country_code) :]
    if not digits or digits[0] == "0" or len(digits) > 15:
        return None
    valid = _validator(country_code)
    if valid is not None:
        return f"+{country_code}{digits}" if valid(digits) else None
    number = phonenumbers.PhoneNumber(country_code=int(country_code), national_number=int(digits))
    if not phonenumbers.is_valid_number(number):
        return None
    return f"+{country_code}{digits}"


_NUMBER_TYPES = (
    "premium_rate", "toll_free", "shared_cost", "voip", "personal_number", "pager", "uan",
    "voicemail", "fixed_line",
)  # fmt: skip


@functools.cache
def _validator(country_code: str) -> Callable[[str], bool] | None:
    """``phonenumbers.is_valid_number`` for national significant numbers of one country, compiled.

    libphonenumber's check looks the region up, then matches up to eleven number-type patterns,
    each through its own regex cache: about two thirds of an import's per-number time. A number is
    valid when it matches the general description and any one type (length, then pattern), and
    that is what this does with the patterns compiled once. Only for calling codes of a single
    region (the region lookup is then trivial); None means: use libphonenumber.
    """
    regions = phonenumbers.COUNTRY_CODE_TO_REGION_CODE.get(int(country_code), ())
    if len(regions) != 1 or not regions[0].isalpha():
        return None
    metadata = phonenumbers.PhoneMetadata.metadata_for_region(regions[0])
    if metadata is None:
        return None
    names = (
        _NUMBER_TYPES if metadata.same_mobile_and_fixed_line_pattern else (*_NUMBER_TYPES, "mobile")
    )

    def lengths_and_pattern(desc: object) -> tuple[frozenset[int], str] | None:
        pattern = getattr(desc, "national_number_pattern", None)
        if not pattern:
            return None
        return frozenset(getattr(desc, "possible_length", ()) or ()), pattern

    general = lengths_and_pattern(metadata.general_desc)
    kinds = [k for k in (lengths_and_pattern(getattr(metadata, n)) for n in names) if k]
    # Per length, the types that allow it as one alternation: a full match of "a|b" is a full
    # match of a or of b, so one regex call replaces a loop over the types. An empty list of
    # lengths allows any length, as in libphonenumber.
    by_length: dict[int, tuple[re.Pattern[str], re.Pattern[str]]] = {}
    for length in range(1, 18):
        if general is None or (general[0] and length not in general[0]):
            continue
        allowed = [p for lengths, p in kinds if not lengths or length in lengths]
        if allowed:
            either = "|".join(f"(?:{p})" for p in allowed)
            by_length[length] = (re.compile(general[1]), re.compile(either))

    def valid(digits: str) -> bool:
        patterns = by_length.get(len(digits))
        return (
            patterns is not None
            and patterns[0].fullmatch(digits) is not None
            and patterns[1].fullmatch(digits) is not None
        )

    return valid


def national_digits(e164: str, country_code: str) -> str:
    """Digits as the XML gateway family expects them.

    The national number for the agency's own country (``52903991``), country code and number for
    any other (``4712345678``).
    """
    own = "+" + country_code
    if e164.startswith(own):
        # E.164 is the country code followed by the national significant number, and country
        # codes are prefix-free: slicing is exact, and this runs for every text sent.
        return e164[len(own) :]
    number = phonenumbers.parse(e164, None)
    if str(number.country_code) == country_code:
        return str(phonenumbers.national_significant_number(number))
    return e164.lstrip("+")
