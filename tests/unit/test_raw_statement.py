"""Values read back by statements on the driver itself (storage/raw.py)."""

from __future__ import annotations

import datetime as dt

from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import Column, MetaData, Table, create_engine, insert

from patronlink.storage.raw import bind_time, utc
from patronlink.storage.types import UTCDateTime


def test_times_read_back_as_aware_utc() -> None:
    expected = dt.datetime(2026, 11, 23, 10, 0, 0, 123456, tzinfo=dt.UTC)
    assert utc("2026-11-23 10:00:00.123456") == expected  # SQLite's stored text
    copenhagen = dt.timezone(dt.timedelta(hours=1))
    assert utc(dt.datetime(2026, 11, 23, 11, 0, 0, 123456, tzinfo=copenhagen)) == expected
    assert utc(expected).tzinfo is dt.UTC


@settings(max_examples=300, deadline=None)
@given(
    st.datetimes(
        min_value=dt.datetime(1, 1, 2),  # noqa: DTZ001 - hypothesis takes naive bounds
        max_value=dt.datetime(9999, 12, 30),  # noqa: DTZ001 - hypothesis takes naive bounds
        timezones=st.sampled_from(
            [dt.UTC, dt.timezone(dt.timedelta(hours=1)), dt.timezone(dt.timedelta(hours=-9.5))]
        ),
    )
)
def test_sqlite_times_are_bound_as_sqlalchemy_stores_them(value: dt.datetime) -> None:
    """The claim compares stored text with bound text: the two must agree to the character."""
    engine = create_engine("sqlite://")
    table = Table("t", MetaData(), Column("at", UTCDateTime))
    table.create(engine)
    with engine.begin() as conn:
        conn.execute(insert(table).values(at=value))
        stored = conn.exec_driver_sql("SELECT at FROM t").scalar_one()
        assert bind_time(conn, value) == stored
        assert utc(stored) == value
    engine.dispose()
