"""Run Alembic migrations programmatically (no alembic.ini to find or keep in sync).

``upgrade`` holds a lock for the whole run, so that several ``db upgrade`` at once (one init
container per host) wait for each other: the first migrates, the others then find the schema
current. PostgreSQL uses a session advisory lock on a connection of its own; SQLite, one file on
one machine, an exclusive ``flock`` on a file beside the database. Each migration statement on
PostgreSQL waits at most ``lock_timeout`` for a table lock: a migration queued behind a long
transaction would otherwise hold up every writer of that table behind itself (inbound SMS stalled
for seconds in the trial of issue 14). The whole run is then rolled back and tried again.
"""

from __future__ import annotations

import contextlib
import fcntl
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, text
from sqlalchemy.exc import OperationalError

MIGRATIONS = Path(__file__).parent / "migrations"

# The advisory lock's key: any constant that other applications sharing the database do not use
# (the first eight bytes of sha256(b"patronlink db upgrade"), as a signed bigint).
UPGRADE_LOCK_KEY = 0x707AFC8BD00AB483
# PostgreSQL's SQLSTATE for a lock_timeout that ran out.
LOCK_NOT_AVAILABLE = "55P03"


class NewerSchemaError(RuntimeError):
    """The database was migrated by a newer patronlink than this one."""


@dataclass(frozen=True, slots=True)
class SchemaState:
    current: str | None
    head: str | None
    known: bool  # ``current`` is one of this version's migrations (or the schema is empty)

    @property
    def up_to_date(self) -> bool:
        return self.current == self.head

    @property
    def newer(self) -> bool:
        return not self.known


def alembic_config(engine: Engine, lock_timeout_ms: int | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["engine"] = engine
    config.attributes["lock_timeout_ms"] = lock_timeout_ms
    return config


def schema_state(engine: Engine) -> SchemaState:
    script = ScriptDirectory.from_config(alembic_config(engine))
    current = current_revision(engine)
    known = current is None or current in {r.revision for r in script.walk_revisions()}
    return SchemaState(current=current, head=script.get_current_head(), known=known)


def upgrade(
    engine: Engine,
    revision: str = "head",
    *,
    lock_timeout_seconds: float = 5.0,
    attempts: int = 5,
    on_wait: Callable[[], None] | None = None,
    on_retry: Callable[[int, float], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[str | None, str | None]:
    """Bring the schema to ``revision`` under the upgrade lock; running it again does nothing.

    Returns the revisions before and after, both read under the lock.
    ``on_wait`` is called when another upgrade holds the lock, ``on_retry(attempt, delay)``
    when a migration met a table lock held longer than the timeout. Raises ``NewerSchemaError``
    for a schema this version does not know, and the ``OperationalError`` of the last attempt.
    """
    with upgrade_lock(engine, on_wait):
        state = schema_state(engine)
        if state.newer:
            raise NewerSchemaError(
                f"the database schema is at revision {state.current}, newer than this "
                f"patronlink knows (its newest is {state.head}): nothing to do here; "
                "run the newer patronlink"
            )
        timeout_ms = max(1, round(lock_timeout_seconds * 1000))
        for attempt in range(1, attempts + 1):
            try:
                command.upgrade(alembic_config(engine, timeout_ms), revision)
                break
            except OperationalError as exc:
                if attempt == attempts or getattr(exc.orig, "sqlstate", None) != LOCK_NOT_AVAILABLE:
                    raise
                delay = min(2.0 ** (attempt - 1), 30.0)
                if on_retry is not None:
                    on_retry(attempt, delay)
                sleep(delay)
        return state.current, current_revision(engine)


@contextlib.contextmanager
def upgrade_lock(engine: Engine, on_wait: Callable[[], None] | None = None) -> Iterator[None]:
    """Hold the database's upgrade lock (waiting for it if another process has it)."""
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT")
            taken = conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": UPGRADE_LOCK_KEY})
            if not taken.scalar_one():
                if on_wait is not None:
                    on_wait()
                conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": UPGRADE_LOCK_KEY})
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": UPGRADE_LOCK_KEY})
        return
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        yield  # a private in-memory database: nobody to wait for
        return
    lock_path = Path(database).with_name(Path(database).name + ".upgrade-lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if on_wait is not None:
                on_wait()
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision(engine: Engine) -> str | None:
    return ScriptDirectory.from_config(alembic_config(engine)).get_current_head()
