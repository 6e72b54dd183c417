"""WhatsApp media: each message's type (text, image, document) and its media URL

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable, no default: existing rows stay as they are and read as text messages.
    with op.batch_alter_table("whatsapp_messages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("message_type", sa.String(length=10), nullable=True))
        batch_op.add_column(sa.Column("media_url", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("whatsapp_messages", schema=None) as batch_op:
        batch_op.drop_column("media_url")
        batch_op.drop_column("message_type")
