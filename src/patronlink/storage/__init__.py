"""Persistence: SQLAlchemy tables, repositories returning domain objects, Alembic migrations."""
