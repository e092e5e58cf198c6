"""inbound SMS: the duplicate check probes (agency, number, text, time)

The old index ended at the number, so the 120-second duplicate check read every recent message
from the sender; a number texting many times a minute (or a benchmark) made each request slower.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07 12:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("inbound_sms", schema=None) as batch_op:
        batch_op.drop_index("ix_inbound_sms_dedupe")
        batch_op.create_index(
            "ix_inbound_sms_dedupe_text",
            ["agency_id", "number", "text", "received_at"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("inbound_sms", schema=None) as batch_op:
        batch_op.drop_index("ix_inbound_sms_dedupe_text")
        batch_op.create_index(
            "ix_inbound_sms_dedupe", ["agency_id", "number", "received_at"], unique=False
        )
