"""patron import as the field exports it: warnings beside errors, unparsed phone numbers

A phone number an import cannot read no longer keeps the patron out: it is kept as written in
``patrons.phones_unparsed``. Each finding of a run says its ``field`` and ``severity``, and a run
counts the records written with a warning. ``patron_id_sequences`` numbers the patrons of rows
that carry no card number.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-30 00:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "patron_id_sequences",
        sa.Column("agency_id", sa.String(length=16), nullable=False),
        sa.Column("last_value", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["agency_id"], ["agencies.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("agency_id"),
    )
    with op.batch_alter_table("patrons", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("phones_unparsed", sa.JSON(), nullable=False, server_default="[]")
        )
    with op.batch_alter_table("import_runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("warnings", sa.Integer(), nullable=False, server_default="0"))
    with op.batch_alter_table("import_run_errors", schema=None) as batch_op:
        batch_op.add_column(sa.Column("field", sa.String(length=64), nullable=True))
        batch_op.add_column(
            sa.Column("severity", sa.String(length=8), nullable=False, server_default="error")
        )


def downgrade() -> None:
    with op.batch_alter_table("import_run_errors", schema=None) as batch_op:
        batch_op.drop_column("severity")
        batch_op.drop_column("field")
    with op.batch_alter_table("import_runs", schema=None) as batch_op:
        batch_op.drop_column("warnings")
    with op.batch_alter_table("patrons", schema=None) as batch_op:
        batch_op.drop_column("phones_unparsed")
    op.drop_table("patron_id_sequences")
