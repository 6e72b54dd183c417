"""SMS malipo sends for itself (a transfer's one-time code), kept so their delivery reports are known

- ``sms_system_messages``: the gateway's message id, what the message was for, and its delivery
  state. No text, no number: only what recognising and recording its report needs.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07 13:45:00
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
        "sms_system_messages",
        sa.Column("gateway_message_id", sa.String(length=100), nullable=False),
        sa.Column("purpose", sa.String(length=40), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("gateway_status", sa.String(length=40), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("gateway_message_id", name=op.f("pk_sms_system_messages")),
    )


def downgrade() -> None:
    op.drop_table("sms_system_messages")
