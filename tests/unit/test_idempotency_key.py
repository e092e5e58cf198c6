"""The Idempotency-Key header's syntax (an sf-string, as draft-ietf-httpapi-idempotency-key-header
has it; bare keys as Stripe's clients send them) and the request fingerprint."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from patronlink.domain.errors import ValidationError
from patronlink.domain.idempotency import MAX_KEY_LENGTH, fingerprint, parse_key

VISIBLE = st.characters(min_codepoint=0x20, max_codepoint=0x7E)


def sf_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


# The draft's example, written as it shows it, and the same key bare.
@pytest.mark.parametrize(
    ("header", "key"),
    [
        ('"8e03978e-40d5-43e8-bc93-6894a57f9324"', "8e03978e-40d5-43e8-bc93-6894a57f9324"),
        ("8e03978e-40d5-43e8-bc93-6894a57f9324", "8e03978e-40d5-43e8-bc93-6894a57f9324"),
        ('"a \\"quoted\\" \\\\ key"', 'a "quoted" \\ key'),
        ("  spaced-out  ", "spaced-out"),
    ],
)
def test_examples(header: str, key: str) -> None:
    assert parse_key(header) == key


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        ("", "is empty"),
        ('""', "is empty"),
        ('"open', "no closing quote"),
        ('"a"b', "after its closing quote"),
        ('"a\\nb"', "escapes neither"),
        ('a"b', "neither a quoted string nor a bare key"),
        ("nøgle", "visible ASCII"),
        ("a\x00b", "visible ASCII"),
        ("k" * (MAX_KEY_LENGTH + 1), f"longer than {MAX_KEY_LENGTH}"),
    ],
)
def test_refusals_name_the_header_and_the_reason(header: str, reason: str) -> None:
    with pytest.raises(ValidationError) as caught:
        parse_key(header)
    assert caught.value.field == "Idempotency-Key"
    assert reason in str(caught.value)


@given(st.text(VISIBLE, min_size=1, max_size=MAX_KEY_LENGTH))
def test_every_key_survives_quoting(key: str) -> None:
    stripped = key.strip(" ")
    if not stripped:
        return
    assert parse_key(sf_string(stripped)) == stripped


@given(
    st.text(
        st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters='"\\'),
        min_size=1,
        max_size=MAX_KEY_LENGTH,
    )
)
def test_bare_keys_are_taken_as_they_are(key: str) -> None:
    assert parse_key(key) == key


@given(st.text(max_size=300))
def test_any_header_is_a_key_or_a_validation_error(header: str) -> None:
    try:
        key = parse_key(header)
    except ValidationError:
        return
    assert 1 <= len(key) <= MAX_KEY_LENGTH
    assert all(" " <= ch <= "~" for ch in key)


def test_fingerprint_ignores_key_order_and_sees_every_value() -> None:
    a = fingerprint({"to": "52903991", "text": "Hej", "send_at": None})
    assert a == fingerprint({"send_at": None, "text": "Hej", "to": "52903991"})
    assert a != fingerprint({"to": "52903991", "text": "Hej!", "send_at": None})
    assert a != fingerprint({"to": "52903991", "text": "Hej", "send_at": "2026-12-01T08:00:00"})
