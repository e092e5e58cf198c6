"""Alembic environment: the engine comes from ``patronlink.storage.migrate``, never from a file."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Engine, text

from patronlink.storage.tables import metadata

engine = context.config.attributes.get("engine")
if not isinstance(engine, Engine):  # pragma: no cover - only reachable by running alembic by hand
    raise RuntimeError("run migrations with `patronlink db upgrade`")

with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite ALTERs by table copy
        compare_type=True,
    )
    with context.begin_transaction():
        lock_timeout_ms = context.config.attributes.get("lock_timeout_ms")
        if lock_timeout_ms and connection.dialect.name == "postgresql":
            # Local to the migration's transaction: the pooled connection keeps no trace.
            connection.execute(
                text("SELECT set_config('lock_timeout', :ms, true)"),
                {"ms": f"{int(lock_timeout_ms)}ms"},
            )
        context.run_migrations()
    connection.commit()
