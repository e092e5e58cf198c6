"""patron import: runs, run errors, per-patron import state, per-source schedule state

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23 12:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "import_runs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("source_id", sa.String(length=64), nullable=False),
        sa.Column("agency_id", sa.String(length=16), nullable=False),
        sa.Column("trigger", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("records", sa.Integer(), nullable=False),
        sa.Column("created", sa.Integer(), nullable=False),
        sa.Column("updated", sa.Integer(), nullable=False),
        sa.Column("unchanged", sa.Integer(), nullable=False),
        sa.Column("deactivated", sa.Integer(), nullable=False),
        sa.Column("failed", sa.Integer(), nullable=False),
        sa.Column("message", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["source_id"],
            ["import_sources.id"],
            name=op.f("fk_import_runs_source_id_import_sources"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_import_runs")),
    )
    op.create_index("ix_import_runs_source", "import_runs", ["source_id", "id"], unique=False)
    op.create_table(
        "import_run_errors",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("record_number", sa.Integer(), nullable=False),
        sa.Column("external_id", sa.String(length=128), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["import_runs.id"],
            name=op.f("fk_import_run_errors_run_id_import_runs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_import_run_errors")),
    )
    op.create_index(
        "ix_import_run_errors_run", "import_run_errors", ["run_id", "record_number"], unique=False
    )
    op.create_table(
        "import_patron_state",
        sa.Column("patron_pk", sa.Integer(), nullable=False),
        sa.Column("digest", sa.String(length=32), nullable=True),
        sa.Column("missing_runs", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["patron_pk"],
            ["patrons.id"],
            name=op.f("fk_import_patron_state_patron_pk_patrons"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("patron_pk", name=op.f("pk_import_patron_state")),
    )
    op.create_table(
        "import_source_state",
        sa.Column("source_id", sa.String(length=64), nullable=False),
        sa.Column("last_due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("running_run_id", sa.Integer(), nullable=True),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["source_id"],
            ["import_sources.id"],
            name=op.f("fk_import_source_state_source_id_import_sources"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("source_id", name=op.f("pk_import_source_state")),
    )


def downgrade() -> None:
    op.drop_table("import_source_state")
    op.drop_table("import_patron_state")
    op.drop_index("ix_import_run_errors_run", table_name="import_run_errors")
    op.drop_table("import_run_errors")
    op.drop_index("ix_import_runs_source", table_name="import_runs")
    op.drop_table("import_runs")
