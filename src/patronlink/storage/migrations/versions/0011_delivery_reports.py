"""delivery reports: each text's delivery state, the provider's code and words, and when

``delivery`` is ``none`` (no report asked for), ``pending`` (sent, report expected),
``delivered`` or ``failed``; the staff error queue lists ``failed`` texts per agency, so they get
an index that starts with the agency.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-30 00:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("delivery", sa.String(12), nullable=False, server_default="none")
        )
        batch_op.add_column(sa.Column("delivery_code", sa.String(32)))
        batch_op.add_column(sa.Column("delivery_description", sa.Text()))
        batch_op.add_column(sa.Column("delivered_at", sa.DateTime(timezone=True)))
        batch_op.create_index("ix_messages_agency_delivery", ["agency_id", "delivery", "id"])


def downgrade() -> None:
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_index("ix_messages_agency_delivery")
        batch_op.drop_column("delivered_at")
        batch_op.drop_column("delivery_description")
        batch_op.drop_column("delivery_code")
        batch_op.drop_column("delivery")
