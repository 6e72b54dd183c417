"""Mobile money: payment channels, collections, payouts, merchant callbacks, merchant pricing

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23 16:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "payment_channels",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("client_id", sa.Uuid(), nullable=False),
        sa.Column("mode", sa.String(length=4), nullable=False),
        sa.Column("channel_type", sa.String(length=10), nullable=False),
        sa.Column("short_code", sa.String(length=20), nullable=False),
        sa.Column("account_number", sa.String(length=40), nullable=True),
        sa.Column("description", sa.String(length=200), nullable=False),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["client_id"], ["clients.id"], name=op.f("fk_payment_channels_client_id_clients")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payment_channels")),
    )
    op.create_index(op.f("ix_payment_channels_client_id"), "payment_channels", ["client_id"], unique=False)
    op.create_index(
        "uq_payment_channels_wallet",
        "payment_channels",
        ["client_id", "mode"],
        unique=True,
        postgresql_where=sa.text("channel_type = 'wallet'"),
        sqlite_where=sa.text("channel_type = 'wallet'"),
    )
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("client_id", sa.Uuid(), nullable=False),
        sa.Column("mode", sa.String(length=4), nullable=False),
        sa.Column("event", sa.String(length=40), nullable=False),
        sa.Column("subject_reference", sa.String(length=20), nullable=False),
        sa.Column("url", sa.String(length=2000), nullable=False),
        sa.Column(
            "payload",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_status_code", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["client_id"], ["clients.id"], name=op.f("fk_webhook_deliveries_client_id_clients")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_deliveries")),
    )
    op.create_index(
        op.f("ix_webhook_deliveries_client_id"), "webhook_deliveries", ["client_id"], unique=False
    )
    op.create_index(
        op.f("ix_webhook_deliveries_subject_reference"),
        "webhook_deliveries",
        ["subject_reference"],
        unique=False,
    )
    op.create_table(
        "collections",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("client_id", sa.Uuid(), nullable=False),
        sa.Column("mode", sa.String(length=4), nullable=False),
        sa.Column("api_user_id", sa.Uuid(), nullable=True),
        sa.Column("purpose", sa.String(length=10), nullable=False),
        sa.Column("reference", sa.String(length=20), nullable=False),
        sa.Column("checkout_request_id", sa.String(length=60), nullable=False),
        sa.Column("external_reference", sa.String(length=100), nullable=True),
        sa.Column("channel_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("provider", sa.String(length=20), nullable=False),
        sa.Column("network_code", sa.String(length=10), nullable=False),
        sa.Column("phone", sa.String(length=20), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("fee", sa.BigInteger(), nullable=False),
        sa.Column("fee_hold_id", sa.Uuid(), nullable=True),
        sa.Column("customer_name", sa.String(length=200), nullable=True),
        sa.Column("callback_url", sa.String(length=2000), nullable=True),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("callback_token_hash", sa.String(length=64), nullable=False),
        sa.Column("merchant_request_id", sa.String(length=60), nullable=True),
        sa.Column("provider_checkout_request_id", sa.String(length=60), nullable=True),
        sa.Column("mpesa_receipt", sa.String(length=30), nullable=True),
        sa.Column("result_code", sa.Integer(), nullable=True),
        sa.Column("result_desc", sa.String(length=300), nullable=True),
        sa.Column("journal_id", sa.Uuid(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["api_user_id"], ["api_users.id"], name=op.f("fk_collections_api_user_id_api_users")
        ),
        sa.ForeignKeyConstraint(
            ["channel_id"], ["payment_channels.id"], name=op.f("fk_collections_channel_id_payment_channels")
        ),
        sa.ForeignKeyConstraint(["client_id"], ["clients.id"], name=op.f("fk_collections_client_id_clients")),
        sa.ForeignKeyConstraint(
            ["fee_hold_id"], ["ledger_holds.id"], name=op.f("fk_collections_fee_hold_id_ledger_holds")
        ),
        sa.ForeignKeyConstraint(
            ["journal_id"], ["ledger_journals.id"], name=op.f("fk_collections_journal_id_ledger_journals")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_collections")),
        sa.UniqueConstraint("callback_token_hash", name=op.f("uq_collections_callback_token_hash")),
        sa.UniqueConstraint("checkout_request_id", name=op.f("uq_collections_checkout_request_id")),
        sa.UniqueConstraint(
            "client_id",
            "mode",
            "external_reference",
            name=op.f("uq_collections_client_id_mode_external_reference"),
        ),
        sa.UniqueConstraint("reference", name=op.f("uq_collections_reference")),
    )
    op.create_index(
        "ix_collections_client_created", "collections", ["client_id", "mode", "created_at"], unique=False
    )
    op.create_index(
        op.f("ix_collections_provider_checkout_request_id"),
        "collections",
        ["provider_checkout_request_id"],
        unique=False,
    )
    op.create_table(
        "webhook_attempts",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("delivery_id", sa.Uuid(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("duration_ms", sa.Integer(), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["delivery_id"],
            ["webhook_deliveries.id"],
            name=op.f("fk_webhook_attempts_delivery_id_webhook_deliveries"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_attempts")),
    )
    op.create_index(
        op.f("ix_webhook_attempts_delivery_id"), "webhook_attempts", ["delivery_id"], unique=False
    )
    op.create_table(
        "payouts",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("client_id", sa.Uuid(), nullable=False),
        sa.Column("mode", sa.String(length=4), nullable=False),
        sa.Column("api_user_id", sa.Uuid(), nullable=True),
        sa.Column("reference", sa.String(length=20), nullable=False),
        sa.Column("external_reference", sa.String(length=100), nullable=True),
        sa.Column("channel", sa.String(length=10), nullable=False),
        sa.Column("network_code", sa.String(length=10), nullable=False),
        sa.Column("phone", sa.String(length=20), nullable=True),
        sa.Column("account_number", sa.String(length=40), nullable=True),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("fee", sa.BigInteger(), nullable=False),
        sa.Column("hold_id", sa.Uuid(), nullable=False),
        sa.Column("fee_hold_id", sa.Uuid(), nullable=True),
        sa.Column("callback_url", sa.String(length=2000), nullable=True),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("callback_token_hash", sa.String(length=64), nullable=False),
        sa.Column("originator_conversation_id", sa.String(length=60), nullable=False),
        sa.Column("conversation_id", sa.String(length=60), nullable=True),
        sa.Column("transaction_id", sa.String(length=30), nullable=True),
        sa.Column("result_code", sa.Integer(), nullable=True),
        sa.Column("result_desc", sa.String(length=300), nullable=True),
        sa.Column("journal_id", sa.Uuid(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["api_user_id"], ["api_users.id"], name=op.f("fk_payouts_api_user_id_api_users")
        ),
        sa.ForeignKeyConstraint(["client_id"], ["clients.id"], name=op.f("fk_payouts_client_id_clients")),
        sa.ForeignKeyConstraint(
            ["fee_hold_id"], ["ledger_holds.id"], name=op.f("fk_payouts_fee_hold_id_ledger_holds")
        ),
        sa.ForeignKeyConstraint(
            ["hold_id"], ["ledger_holds.id"], name=op.f("fk_payouts_hold_id_ledger_holds")
        ),
        sa.ForeignKeyConstraint(
            ["journal_id"], ["ledger_journals.id"], name=op.f("fk_payouts_journal_id_ledger_journals")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payouts")),
        sa.UniqueConstraint("callback_token_hash", name=op.f("uq_payouts_callback_token_hash")),
        sa.UniqueConstraint(
            "client_id",
            "mode",
            "external_reference",
            name=op.f("uq_payouts_client_id_mode_external_reference"),
        ),
        sa.UniqueConstraint("originator_conversation_id", name=op.f("uq_payouts_originator_conversation_id")),
        sa.UniqueConstraint("reference", name=op.f("uq_payouts_reference")),
    )
    op.create_index("ix_payouts_client_created", "payouts", ["client_id", "mode", "created_at"], unique=False)
    op.create_table(
        "merchant_pricing",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("client_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("percent_bp", sa.Integer(), nullable=False),
        sa.Column("fixed", sa.BigInteger(), nullable=False),
        sa.Column("minimum", sa.BigInteger(), nullable=False),
        sa.Column("maximum", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["client_id"], ["clients.id"], name=op.f("fk_merchant_pricing_client_id_clients")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_merchant_pricing")),
        sa.UniqueConstraint("client_id", "kind", name=op.f("uq_merchant_pricing_client_id_kind")),
    )


def downgrade() -> None:
    op.drop_table("merchant_pricing")
    op.drop_index("ix_payouts_client_created", table_name="payouts")
    op.drop_table("payouts")
    op.drop_index(op.f("ix_webhook_attempts_delivery_id"), table_name="webhook_attempts")
    op.drop_table("webhook_attempts")
    op.drop_index(op.f("ix_collections_provider_checkout_request_id"), table_name="collections")
    op.drop_index("ix_collections_client_created", table_name="collections")
    op.drop_table("collections")
    op.drop_index(op.f("ix_webhook_deliveries_subject_reference"), table_name="webhook_deliveries")
    op.drop_index(op.f("ix_webhook_deliveries_client_id"), table_name="webhook_deliveries")
    op.drop_table("webhook_deliveries")
    op.drop_index("uq_payment_channels_wallet", table_name="payment_channels")
    op.drop_index(op.f("ix_payment_channels_client_id"), table_name="payment_channels")
    op.drop_table("payment_channels")
