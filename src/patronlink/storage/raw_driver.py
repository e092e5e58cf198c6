"""The raw-driver path: statements on the DB-API driver itself (sqlite3, psycopg), below
SQLAlchemy, for the hot paths.

Used by the patron import (``storage/imports.py``), the outbox's claim, outcome batches and
single-text enqueue (``storage/outbox.py``) and the inbound SMS log (``storage/inbound.py``).
Through SQLAlchemy Core every statement costs 25-40 µs of Python, every bound value goes through
its type's processor (UTC timestamps, JSON) and every result row is wrapped; for the statements
run per import batch, per claim and outcome batch of the dispatcher and per inbound text, that is
a large share of the time (``bench/import.py``, ``bench/dispatch.py``, ``bench/inbound.py``;
``docs/benchmarks.md``). These run on the DBAPI connection under the caller's ``Connection``, so
they are part of its transaction. Statements are written with ``?`` marks (psycopg is sent
``%s``). The values are what SQLAlchemy itself would bind (``storage/raw.py`` converts times and
JSON): ISO dates and naive UTC timestamps on SQLite, native types on PostgreSQL, JSON as text.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from sqlalchemy import Connection

# Rows fetched at a time when a result is streamed (the population of a source).
FETCH = 5000


class Driver:
    def __init__(self, conn: Connection) -> None:
        self.postgres = conn.dialect.name == "postgresql"
        # The DBAPI connection SQLAlchemy checked out for ``conn``: same session, same transaction.
        self._raw: Any = conn.connection.dbapi_connection

    def among(self, column: str) -> str:
        """SQL for ``column`` being one of a list given as a single parameter (see ``values``).

        One parameter instead of an IN list of thousands: PostgreSQL takes an array; SQLite reads
        a JSON array with json_each, and either way the statement's text stays the same, so it is
        prepared once.
        """
        if self.postgres:
            return f"{column} = ANY(?)"
        return f"{column} IN (SELECT value FROM json_each(?))"  # noqa: S608 - our own names

    def values(self, values: Sequence[str]) -> Any:
        """The parameter for ``among``."""
        return list(values) if self.postgres else json.dumps(list(values))

    def _sql(self, sql: str) -> str:
        return sql.replace("?", "%s") if self.postgres else sql

    def rows(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        cursor = self._raw.cursor()
        try:
            cursor.execute(self._sql(sql), params)
            return list(cursor.fetchall()) if cursor.description else []
        finally:
            cursor.close()

    def rowcount(self, sql: str, params: Sequence[Any]) -> int:
        """Run a statement; how many rows it touched."""
        cursor = self._raw.cursor()
        try:
            cursor.execute(self._sql(sql), params)
            return int(cursor.rowcount)
        finally:
            cursor.close()

    def stream(self, sql: str, params: Sequence[Any]) -> Iterator[tuple[Any, ...]]:
        """The rows of a query a page at a time (a million of them are never all in memory).

        On PostgreSQL a named (server-side) cursor, so the server does not send them all at once.
        """
        cursor = (
            self._raw.cursor("patronlink_import_stream") if self.postgres else self._raw.cursor()
        )
        try:
            cursor.execute(self._sql(sql), params)
            while page := cursor.fetchmany(FETCH):
                yield from page
        finally:
            cursor.close()

    def insert(
        self,
        table: str,
        columns: Sequence[str],
        rows: Iterable[tuple[Any, ...]],
        types: Sequence[str],
    ) -> None:
        """Insert rows, each a tuple of ``columns``' values (``types``: their PostgreSQL types).

        PostgreSQL: ``COPY`` in the binary format, several times faster than even a pipelined
        ``executemany`` of INSERTs (one statement, rows streamed as they are made, no per-row
        round trip or plan, no text to format here or to parse in the server). SQLite:
        ``executemany``, which steps one prepared statement per row in C.
        """
        names = ", ".join(columns)
        cursor = self._raw.cursor()
        try:
            if self.postgres:
                with cursor.copy(f"COPY {table} ({names}) FROM STDIN (FORMAT BINARY)") as copy:
                    copy.set_types(list(types))
                    for row in rows:
                        copy.write_row(row)
            else:
                marks = ", ".join("?" * len(columns))
                sql = f"INSERT INTO {table} ({names}) VALUES ({marks})"  # noqa: S608 - our own names
                cursor.executemany(sql, rows)
        finally:
            cursor.close()
