"""Which database errors mean "the database is away for now" rather than "this code is wrong".

The loops of a worker back off and try again after the first kind (the connection was refused or
cut, the server is shutting down, the database refuses writes for maintenance, a SQLite lock
outlived its busy timeout, the pool ran dry); the second kind (a missing table, a constraint, bad
SQL) does not mend by waiting, so it ends the loop and the process, and the supervisor sees it.
"""

from __future__ import annotations

from sqlalchemy import exc as sa_exc


def is_unavailable(error: BaseException) -> bool:
    """True when ``error`` says the database cannot be used now, and waiting may mend it."""
    if isinstance(error, sa_exc.TimeoutError):  # no connection free in the pool in time
        return True
    if isinstance(error, sa_exc.DBAPIError):
        if error.connection_invalidated:
            return True
        # OperationalError: refused or cut connections, admin shutdown, "database is locked",
        # "not currently accepting connections". InterfaceError: a connection closed under us.
        # InternalError: PostgreSQL's class 25, "cannot execute UPDATE in a read-only
        # transaction" (default_transaction_read_only set for maintenance, a fail-over replica).
        return isinstance(
            error, sa_exc.OperationalError | sa_exc.InterfaceError | sa_exc.InternalError
        )
    return isinstance(error, ConnectionError)


def describe(error: BaseException) -> str:
    """One line saying what went wrong, without the statement or its parameters (which may
    hold patrons' numbers and texts)."""
    if isinstance(error, sa_exc.DBAPIError) and error.orig is not None:
        first = str(error.orig).strip().splitlines()
        return f"{type(error.orig).__name__}: {first[0] if first else ''}".strip()
    return f"{type(error).__name__}: {error}"
