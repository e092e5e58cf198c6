"""Values for statements run on the driver itself (``raw_driver.Driver``), below SQLAlchemy.

SQLAlchemy's execution machinery costs 25-40 µs a statement, several times what SQLite itself
spends on a short statement; the statements that run on every inbound SMS, every claim and every
import batch go to the DBAPI cursor instead, inside the same transaction. Their values are
converted here the way the column types would: times to what ``UTCDateTime`` stores, JSON to
text, and times read back to aware UTC.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from sqlalchemy import Connection


def bind_time(conn: Connection, value: dt.datetime) -> Any:
    """What ``UTCDateTime`` would store. SQLite compares the stored text, so the format must be
    SQLAlchemy's to the microsecond."""
    if value.tzinfo is None:
        raise ValueError("naive datetime given to a UTC column")
    if value.tzinfo is not dt.UTC:
        value = value.astimezone(dt.UTC)
    if conn.dialect.name == "sqlite":
        # isoformat: the same text as strftime("%Y-%m-%d %H:%M:%S.%f"), in a third of the time
        # (four of these for every text the dispatcher sends).
        return value.replace(tzinfo=None).isoformat(" ", "microseconds")
    return value


def bind_json(value: Any) -> str:
    return json.dumps(value)


def utc(value: Any) -> dt.datetime:
    """A time read by a raw statement: SQLite's text or PostgreSQL's datetime, as aware UTC."""
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    assert isinstance(value, dt.datetime)
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)
