"""The inbound command parser and the reply texts."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from patronlink.domain.renewal import RefusalReason
from patronlink.domain.replies import (
    LoanLine,
    Texts,
    check_template,
    format_date,
    renewal_report,
)
from patronlink.domain.sms_command import NotUnderstood, RenewAll, RenewItem, parse
from patronlink.domain.sms_text import account


@pytest.mark.parametrize(
    ("text", "command"),
    [
        ("Horsens forny alle", RenewAll("Horsens")),  # the spec's examples
        ("aah forny 12345678", RenewItem("aah", "12345678")),
        ("asd forny alle", RenewAll("asd")),
        ("  HORSENS   Forny   ALLE \n", RenewAll("HORSENS")),
        ("bib\tFORNY\t5010001", RenewItem("bib", "5010001")),
        ("Horsens forny", NotUnderstood("Horsens")),
        ("Horsens forny alle nu", NotUnderstood("Horsens")),
        ("Horsens renew all", NotUnderstood("Horsens")),
        ("forny alle", NotUnderstood("forny")),
        ("", NotUnderstood(None)),
        ("   ", NotUnderstood(None)),
        ("x forny " + "9" * 65, NotUnderstood("x")),
    ],
)
def test_parse(text: str, command: object) -> None:
    assert parse(text) == command


@given(st.text(max_size=600))
def test_parse_never_fails_and_only_three_words_renew(text: str) -> None:
    command = parse(text)
    words = text.split()
    if isinstance(command, RenewAll | RenewItem):
        assert len(words) == 3
        assert words[1].casefold() == "forny"
        assert command.prefix == words[0]
    else:
        assert command.prefix is None or len(command.prefix) <= 20


@given(
    st.from_regex(r"[A-Za-z]{1,10}", fullmatch=True), st.from_regex(r"[0-9]{4,14}", fullmatch=True)
)
def test_item_numbers_round_trip(prefix: str, item: str) -> None:
    assert parse(f"{prefix} forny {item}") == RenewItem(prefix, item)


def test_reply_texts_in_both_languages() -> None:
    lines = [
        LoanLine("Kongens Fald", dt.date(2026, 12, 23), None),
        LoanLine("Ternet Ninja", None, RefusalReason.RESERVED),
    ]
    assert renewal_report(Texts("da", {}), "Karen Jensen", lines) == [
        "Fornyelse for Karen Jensen:\nKongens Fald: fornyet til 23.12.2026\n"
        "Ternet Ninja: ikke fornyet, reserveret af en anden"
    ]
    assert renewal_report(Texts("en", {}), "Karen", lines)[0].splitlines()[1:] == [
        "Kongens Fald: renewed until 23.12.2026",
        "Ternet Ninja: not renewed, reserved by someone else",
    ]


def test_every_refusal_reason_has_a_text_in_both_languages() -> None:
    for language in ("da", "en"):
        for reason in RefusalReason:
            assert Texts(language, {}).reason(reason)


def test_agency_overrides_and_template_checks() -> None:
    texts = Texts("da", {"renewed": "{title} -> {date}"})
    assert texts.get("renewed", title="Bog", date="01.02.2027") == "Bog -> 01.02.2027"
    check_template("renewed", "{title} til {date}")
    with pytest.raises(ValueError, match="unknown text"):
        check_template("renewd", "x")
    with pytest.raises(ValueError, match="unknown placeholder"):
        check_template("renewed", "{titel}")


def test_long_reports_are_split_between_lines() -> None:
    lines = [
        LoanLine(f"En meget lang titel nummer {i} om noget", dt.date(2027, 1, 1), None)
        for i in range(30)
    ]
    texts = renewal_report(Texts("da", {}), "Karen", lines)
    assert len(texts) > 1
    assert all(account(t).segments <= 3 for t in texts)
    assert all(t.startswith("Fornyelse for Karen:") for t in texts)
    assert sum(t.count("fornyet til") for t in texts) == 30


def test_date_format() -> None:
    assert format_date(dt.date(2026, 1, 5)) == "05.01.2026"
