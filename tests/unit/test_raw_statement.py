"""The hot statements' text for both drivers (storage/raw.py)."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from patronlink.storage.raw import RawStatement, utc


def test_named_parameters_become_psycopg_style_and_casts_stay() -> None:
    statement = RawStatement("SELECT :a, x::text, 'b:c' FROM t WHERE y = :long_name_2")
    assert statement.sqlite == "SELECT :a, x::text, 'b:c' FROM t WHERE y = :long_name_2"
    assert statement.postgresql == "SELECT %(a)s, x::text, 'b:c' FROM t WHERE y = %(long_name_2)s"


def test_a_percent_sign_is_refused() -> None:
    with pytest.raises(ValueError, match="'%'"):
        RawStatement("SELECT * FROM t WHERE name LIKE 'a%'")


@given(st.lists(st.from_regex(r"[a-z_][a-z0-9_]{0,20}", fullmatch=True), min_size=1, max_size=5))
def test_every_parameter_is_converted_once(names: list[str]) -> None:
    sql = "SELECT " + ", ".join(f":{n}" for n in names)
    assert RawStatement(sql).postgresql == "SELECT " + ", ".join(f"%({n})s" for n in names)


def test_times_read_back_as_aware_utc() -> None:
    expected = dt.datetime(2026, 11, 23, 10, 0, 0, 123456, tzinfo=dt.UTC)
    assert utc("2026-11-23 10:00:00.123456") == expected  # SQLite's stored text
    copenhagen = dt.timezone(dt.timedelta(hours=1))
    assert utc(dt.datetime(2026, 11, 23, 11, 0, 0, 123456, tzinfo=copenhagen)) == expected
    assert utc(expected).tzinfo is dt.UTC
