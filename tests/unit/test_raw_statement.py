"""Values read back by statements on the driver itself (storage/raw.py)."""

from __future__ import annotations

import datetime as dt

from patronlink.storage.raw import utc


def test_times_read_back_as_aware_utc() -> None:
    expected = dt.datetime(2026, 11, 23, 10, 0, 0, 123456, tzinfo=dt.UTC)
    assert utc("2026-11-23 10:00:00.123456") == expected  # SQLite's stored text
    copenhagen = dt.timezone(dt.timedelta(hours=1))
    assert utc(dt.datetime(2026, 11, 23, 11, 0, 0, 123456, tzinfo=copenhagen)) == expected
    assert utc(expected).tzinfo is dt.UTC
