"""inbound SMS log

Revision ID: 0004
Revises: 0002
Create Date: 2026-11-23 11:13:32.561596
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "inbound_sms",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("agency_id", sa.String(length=16), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("number", sa.String(length=40), nullable=False),
        sa.Column("shortcode", sa.String(length=32), nullable=False),
        sa.Column("text", sa.String(length=480), nullable=False),
        sa.Column("command", sa.String(length=64), nullable=True),
        sa.Column("patrons_matched", sa.JSON(), nullable=False),
        sa.Column("outcome", sa.String(length=24), nullable=False),
        sa.Column("renewed", sa.Integer(), nullable=False),
        sa.Column("refused", sa.Integer(), nullable=False),
        sa.Column("replies", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["agency_id"],
            ["agencies.id"],
            name=op.f("fk_inbound_sms_agency_id_agencies"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inbound_sms")),
    )
    with op.batch_alter_table("inbound_sms", schema=None) as batch_op:
        batch_op.create_index(
            "ix_inbound_sms_agency_time", ["agency_id", "received_at"], unique=False
        )
        batch_op.create_index(
            "ix_inbound_sms_dedupe", ["agency_id", "number", "received_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("inbound_sms", schema=None) as batch_op:
        batch_op.drop_index("ix_inbound_sms_dedupe")
        batch_op.drop_index("ix_inbound_sms_agency_time")

    op.drop_table("inbound_sms")
