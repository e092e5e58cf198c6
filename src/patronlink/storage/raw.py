"""Hot statements run straight on the driver's cursor: fixed SQL text, values converted here.

SQLAlchemy's execution machinery costs 25-40 µs a statement, several times what SQLite itself
spends on a short statement. The few statements that run on every callback or every claimed
text are written out once (SQLite's ``:name`` style, turned into psycopg's ``%(name)s`` once) and
run on the connection's DBAPI cursor inside the same transaction. Their values are converted
here the way the column types would: times to what ``UTCDateTime`` stores, JSON to text.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection

_NAMED = re.compile(r"(?<![:\w]):(\w+)")


class RawStatement:
    """One statement for both backends; ``run`` returns the rows it returns, as tuples."""

    def __init__(self, sql: str) -> None:
        if "%" in sql:
            raise ValueError("a raw statement cannot contain '%' (psycopg's placeholder)")
        self.sqlite = sql
        self.postgresql = _NAMED.sub(r"%(\1)s", sql)

    def text(self, conn: Connection) -> str:
        return self.postgresql if conn.dialect.name == "postgresql" else self.sqlite

    def run(self, conn: Connection, params: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        cursor = cursor_of(conn)
        try:
            cursor.execute(self.text(conn), params)
            return cursor.fetchall() if cursor.description is not None else []
        finally:
            cursor.close()


def cursor_of(conn: Connection) -> Any:
    """A DBAPI cursor on the connection's own driver connection (same transaction)."""
    return conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]


def bind_time(conn: Connection, value: dt.datetime) -> Any:
    """What ``UTCDateTime`` would store. SQLite compares the stored text, so the format must be
    SQLAlchemy's to the microsecond."""
    if value.tzinfo is None:
        raise ValueError("naive datetime given to a UTC column")
    value = value.astimezone(dt.UTC)
    if conn.dialect.name == "sqlite":
        return value.strftime("%Y-%m-%d %H:%M:%S.%f")
    return value


def bind_json(value: Any) -> str:
    return json.dumps(value)


def utc(value: Any) -> dt.datetime:
    """A time read by a raw statement: SQLite's text or PostgreSQL's datetime, as aware UTC."""
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    assert isinstance(value, dt.datetime)
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)
