"""Messaging: SMS, merchants' mailers, WhatsApp sessions and bulk sends

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23 16:00:00
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
        "sms_batches",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("client_id", sa.Uuid(), nullable=False),
        sa.Column("mode", sa.String(length=4), nullable=False),
        sa.Column("sender_id", sa.String(length=11), nullable=True),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("accepted", sa.BigInteger(), nullable=False),
        sa.Column("rejected", sa.BigInteger(), nullable=False),
        sa.Column("segments", sa.BigInteger(), nullable=False),
        sa.Column("cost", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("journal_id", sa.Uuid(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["client_id"], ["clients.id"], name=op.f("fk_sms_batches_client_id_clients")),
        sa.ForeignKeyConstraint(
            ["journal_id"], ["ledger_journals.id"], name=op.f("fk_sms_batches_journal_id_ledger_journals")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sms_batches")),
    )
    with op.batch_alter_table("sms_batches", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_sms_batches_client_id"), ["client_id"], unique=False)

    op.create_table(
        "whatsapp_sessions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("client_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("backend", sa.String(length=10), nullable=False),
        sa.Column("phone_number_id", sa.String(length=64), nullable=True),
        sa.Column("access_token", sa.Text(), nullable=True),
        sa.Column("webhook_token", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["client_id"], ["clients.id"], name=op.f("fk_whatsapp_sessions_client_id_clients")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_whatsapp_sessions")),
        sa.UniqueConstraint("client_id", "name", name=op.f("uq_whatsapp_sessions_client_id_name")),
        sa.UniqueConstraint("webhook_token", name=op.f("uq_whatsapp_sessions_webhook_token")),
    )
    op.create_table(
        "mailers",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("client_id", sa.Uuid(), nullable=False),
        sa.Column("api_user_id", sa.Uuid(), nullable=False),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("port", sa.BigInteger(), nullable=False),
        sa.Column("username", sa.String(length=320), nullable=False),
        sa.Column("password", sa.Text(), nullable=False),
        sa.Column("tls", sa.String(length=10), nullable=False),
        sa.Column("insecure", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["api_user_id"],
            ["api_users.id"],
            name=op.f("fk_mailers_api_user_id_api_users"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(["client_id"], ["clients.id"], name=op.f("fk_mailers_client_id_clients")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mailers")),
        sa.UniqueConstraint("api_user_id", name=op.f("uq_mailers_api_user_id")),
    )
    with op.batch_alter_table("mailers", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_mailers_client_id"), ["client_id"], unique=False)

    op.create_table(
        "sms_messages",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("client_id", sa.Uuid(), nullable=False),
        sa.Column("mode", sa.String(length=4), nullable=False),
        sa.Column("batch_id", sa.Uuid(), nullable=True),
        sa.Column("phone_number", sa.String(length=20), nullable=False),
        sa.Column("sender_id", sa.String(length=11), nullable=True),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("segments", sa.BigInteger(), nullable=False),
        sa.Column("encoding", sa.String(length=5), nullable=False),
        sa.Column("cost", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("journal_id", sa.Uuid(), nullable=True),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("gateway_message_id", sa.String(length=100), nullable=True),
        sa.Column("gateway_status", sa.String(length=40), nullable=True),
        sa.Column("failure_reason", sa.String(length=500), nullable=True),
        sa.Column("attempts", sa.BigInteger(), nullable=False),
        sa.Column("refunded", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["batch_id"], ["sms_batches.id"], name=op.f("fk_sms_messages_batch_id_sms_batches")
        ),
        sa.ForeignKeyConstraint(
            ["client_id"], ["clients.id"], name=op.f("fk_sms_messages_client_id_clients")
        ),
        sa.ForeignKeyConstraint(
            ["journal_id"], ["ledger_journals.id"], name=op.f("fk_sms_messages_journal_id_ledger_journals")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sms_messages")),
        sa.UniqueConstraint("gateway_message_id", name=op.f("uq_sms_messages_gateway_message_id")),
    )
    with op.batch_alter_table("sms_messages", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_sms_messages_batch_id"), ["batch_id"], unique=False)
        batch_op.create_index(
            "ix_sms_messages_client_id_created_at", ["client_id", "created_at"], unique=False
        )

    op.create_table(
        "whatsapp_batches",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("client_id", sa.Uuid(), nullable=False),
        sa.Column("mode", sa.String(length=4), nullable=False),
        sa.Column("session_id", sa.Uuid(), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("accepted", sa.BigInteger(), nullable=False),
        sa.Column("rejected", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["client_id"], ["clients.id"], name=op.f("fk_whatsapp_batches_client_id_clients")
        ),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["whatsapp_sessions.id"],
            name=op.f("fk_whatsapp_batches_session_id_whatsapp_sessions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_whatsapp_batches")),
    )
    with op.batch_alter_table("whatsapp_batches", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_whatsapp_batches_client_id"), ["client_id"], unique=False)

    op.create_table(
        "merchant_emails",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("client_id", sa.Uuid(), nullable=False),
        sa.Column("mailer_id", sa.Uuid(), nullable=False),
        sa.Column("batch_id", sa.String(length=32), nullable=False),
        sa.Column("sender_email", sa.String(length=320), nullable=False),
        sa.Column("sender_name", sa.String(length=200), nullable=True),
        sa.Column("reply_to", sa.String(length=320), nullable=True),
        sa.Column("recipient_email", sa.String(length=320), nullable=False),
        sa.Column("recipient_name", sa.String(length=200), nullable=True),
        sa.Column("subject", sa.String(length=300), nullable=False),
        sa.Column("text_body", sa.Text(), nullable=False),
        sa.Column("html_body", sa.Text(), nullable=True),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("smtp_reply", sa.Text(), nullable=True),
        sa.Column("attempts", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["client_id"], ["clients.id"], name=op.f("fk_merchant_emails_client_id_clients")
        ),
        sa.ForeignKeyConstraint(
            ["mailer_id"],
            ["mailers.id"],
            name=op.f("fk_merchant_emails_mailer_id_mailers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_merchant_emails")),
    )
    with op.batch_alter_table("merchant_emails", schema=None) as batch_op:
        batch_op.create_index(
            "ix_merchant_emails_client_id_batch_id", ["client_id", "batch_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_merchant_emails_mailer_id"), ["mailer_id"], unique=False)

    op.create_table(
        "whatsapp_messages",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("client_id", sa.Uuid(), nullable=False),
        sa.Column("mode", sa.String(length=4), nullable=False),
        sa.Column("session_id", sa.Uuid(), nullable=False),
        sa.Column("batch_id", sa.Uuid(), nullable=True),
        sa.Column("backend", sa.String(length=10), nullable=True),
        sa.Column("phone_number", sa.String(length=20), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("gateway_message_id", sa.String(length=200), nullable=True),
        sa.Column("error", sa.String(length=500), nullable=True),
        sa.Column("attempts", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["batch_id"], ["whatsapp_batches.id"], name=op.f("fk_whatsapp_messages_batch_id_whatsapp_batches")
        ),
        sa.ForeignKeyConstraint(
            ["client_id"], ["clients.id"], name=op.f("fk_whatsapp_messages_client_id_clients")
        ),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["whatsapp_sessions.id"],
            name=op.f("fk_whatsapp_messages_session_id_whatsapp_sessions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_whatsapp_messages")),
        sa.UniqueConstraint("gateway_message_id", name=op.f("uq_whatsapp_messages_gateway_message_id")),
    )
    with op.batch_alter_table("whatsapp_messages", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_whatsapp_messages_batch_id"), ["batch_id"], unique=False)
        batch_op.create_index(
            "ix_whatsapp_messages_client_id_created_at", ["client_id", "created_at"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_whatsapp_messages_session_id"), ["session_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("whatsapp_messages", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_whatsapp_messages_session_id"))
        batch_op.drop_index("ix_whatsapp_messages_client_id_created_at")
        batch_op.drop_index(batch_op.f("ix_whatsapp_messages_batch_id"))

    op.drop_table("whatsapp_messages")
    with op.batch_alter_table("merchant_emails", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_merchant_emails_mailer_id"))
        batch_op.drop_index("ix_merchant_emails_client_id_batch_id")

    op.drop_table("merchant_emails")
    with op.batch_alter_table("whatsapp_batches", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_whatsapp_batches_client_id"))

    op.drop_table("whatsapp_batches")
    with op.batch_alter_table("sms_messages", schema=None) as batch_op:
        batch_op.drop_index("ix_sms_messages_client_id_created_at")
        batch_op.drop_index(batch_op.f("ix_sms_messages_batch_id"))

    op.drop_table("sms_messages")
    with op.batch_alter_table("mailers", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_mailers_client_id"))

    op.drop_table("mailers")
    op.drop_table("whatsapp_sessions")
    with op.batch_alter_table("sms_batches", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sms_batches_client_id"))

    op.drop_table("sms_batches")
