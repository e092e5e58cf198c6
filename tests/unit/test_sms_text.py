"""SMS text accounting: GSM-7 or UCS-2, code units and segments, astral replacement."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from patronlink.domain.sms_text import (
    GSM7_BASIC,
    GSM7_EXTENSION,
    TextAccount,
    account,
    encoding,
    replace_astral,
    segments,
)

EMOJI = "\N{GRINNING FACE}"  # U+1F600: two UTF-16 units, four UTF-8 bytes


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", TextAccount("GSM-7", 0, 1)),
        ("Hej", TextAccount("GSM-7", 3, 1)),
        ("Dine lån er fornyet: Æblet, Øen, Åen", TextAccount("GSM-7", 36, 1)),
        ("a" * 160, TextAccount("GSM-7", 160, 1)),
        ("a" * 161, TextAccount("GSM-7", 161, 2)),
        ("a" * 153 * 2, TextAccount("GSM-7", 306, 2)),
        ("a" * (153 * 2 + 1), TextAccount("GSM-7", 307, 3)),
        # Extension characters count two septets.
        ("€", TextAccount("GSM-7", 2, 1)),
        ("^{}\\[~]|€\f", TextAccount("GSM-7", 20, 1)),
        ("a" * 158 + "€", TextAccount("GSM-7", 160, 1)),
        ("a" * 159 + "€", TextAccount("GSM-7", 161, 2)),
        # An escape pair is not split between parts: 152 + "€" does not fit in part one.
        ("a" * 152 + "€" + "a" * 10, TextAccount("GSM-7", 164, 2)),
        ("a" * 152 + "€" + "a" * 152, TextAccount("GSM-7", 306, 3)),
        # UCS-2: one character outside GSM makes the whole text UCS-2.
        ("ç", TextAccount("UCS-2", 1, 1)),  # only capital Ç is in GSM 03.38
        ("Ω" * 70, TextAccount("GSM-7", 70, 1)),
        ("ш" * 70, TextAccount("UCS-2", 70, 1)),
        ("ш" * 71, TextAccount("UCS-2", 71, 2)),
        ("ш" * 67 * 2, TextAccount("UCS-2", 134, 2)),
        ("ш" * (67 * 2 + 1), TextAccount("UCS-2", 135, 3)),
        # Emoji are astral: two UTF-16 units each, never split.
        (EMOJI, TextAccount("UCS-2", 2, 1)),
        (EMOJI * 35, TextAccount("UCS-2", 70, 1)),
        ("a" + EMOJI * 35, TextAccount("UCS-2", 71, 2)),
        ("a" * 66 + EMOJI, TextAccount("UCS-2", 68, 1)),
        ("a" * 66 + EMOJI + "a" * 3, TextAccount("UCS-2", 71, 2)),
    ],
)
def test_account(text: str, expected: TextAccount) -> None:
    assert account(text) == expected
    assert encoding(text) == expected.encoding
    assert segments(text) == expected.segments


def test_alphabet_is_the_128_gsm_code_points_less_escape() -> None:
    assert len(GSM7_BASIC) == 127
    assert len(GSM7_EXTENSION) == 10
    assert not GSM7_BASIC & GSM7_EXTENSION


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Hej", "Hej"),
        (f"Tak {EMOJI}!", "Tak ?!"),
        ("\N{THUMBS UP SIGN}\N{EMOJI MODIFIER FITZPATRICK TYPE-4}", "??"),
        ("€ ÆØÅ ш ❤", "€ ÆØÅ ш ❤"),  # BMP characters (3 UTF-8 bytes at most) stay
    ],
)
def test_replace_astral(text: str, expected: str) -> None:
    assert replace_astral(text) == expected
    assert all(len(ch.encode("utf-8")) <= 3 for ch in replace_astral(text))


def test_replace_astral_keeps_plain_text_gsm7() -> None:
    assert encoding(replace_astral(f"Tak {EMOJI}")) == "GSM-7"


@given(st.text(max_size=700))
def test_units_and_segments_are_consistent(text: str) -> None:
    result = account(text)
    if result.encoding == "GSM-7":
        assert result.units == len(text) + sum(ch in GSM7_EXTENSION for ch in text)
        single, part = 160, 153
    else:
        assert result.units == len(text.encode("utf-16-le")) // 2
        single, part = 70, 67
    if result.units <= single:
        assert result.segments == 1
    else:
        # Packing whole characters can cost at most one unit per part.
        assert math.ceil(result.units / part) <= result.segments
        assert result.segments <= math.ceil(result.units / (part - 1))


@given(st.text(alphabet=sorted(GSM7_BASIC | GSM7_EXTENSION), max_size=400))
def test_gsm_alphabet_texts_are_gsm7(text: str) -> None:
    assert encoding(text) == "GSM-7"


@given(st.text(max_size=200))
def test_replace_astral_leaves_no_four_byte_characters(text: str) -> None:
    replaced = replace_astral(text)
    assert len(replaced) == len(text)
    assert all(len(ch.encode("utf-8", "surrogatepass")) <= 3 for ch in replaced)
