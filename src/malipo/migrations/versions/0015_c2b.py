"""M-Pesa C2B and payment requests

- ``c2b_channels``: a channel's C2B rules (accept all or require a known reference, min/max,
  Daraja's ResponseType, the merchant's callback URL), its callback token's hash and the answer
  and time of its URL registration with Daraja.
- ``c2b_payments``: one row per C2B TransID (unique: a repeated confirmation changes nothing).
- ``payment_requests``: amounts a payer pays later (one open request per reference).
- ``payment_request_payments``: the collections that paid a request, and their overpaid part.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07 18:37:04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "c2b_channels",
        sa.Column("channel_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("client_id", sa.Uuid(), nullable=False),
        sa.Column("mode", sa.String(length=4), nullable=False),
        sa.Column("rule", sa.String(length=24), nullable=False),
        sa.Column("min_amount", sa.BigInteger(), nullable=True),
        sa.Column("max_amount", sa.BigInteger(), nullable=True),
        sa.Column("response_type", sa.String(length=10), nullable=False),
        sa.Column("callback_url", sa.String(length=2000), nullable=True),
        sa.Column("short_code", sa.String(length=20), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=True),
        sa.Column("registration_status", sa.String(length=10), nullable=False),
        sa.Column(
            "registration_reply",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("registered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["channel_id"], ["payment_channels.id"], name=op.f("fk_c2b_channels_channel_id_payment_channels")
        ),
        sa.ForeignKeyConstraint(
            ["client_id"], ["clients.id"], name=op.f("fk_c2b_channels_client_id_clients")
        ),
        sa.PrimaryKeyConstraint("channel_id", name=op.f("pk_c2b_channels")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_c2b_channels_token_hash")),
    )
    with op.batch_alter_table("c2b_channels", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_c2b_channels_client_id"), ["client_id"], unique=False)

    op.create_table(
        "payment_requests",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("client_id", sa.Uuid(), nullable=False),
        sa.Column("mode", sa.String(length=4), nullable=False),
        sa.Column("api_user_id", sa.Uuid(), nullable=True),
        sa.Column("channel_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("account_reference", sa.String(length=20), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("paid_amount", sa.BigInteger(), nullable=False),
        sa.Column("overpaid_amount", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("description", sa.String(length=200), nullable=True),
        sa.Column("callback_url", sa.String(length=2000), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("paid_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["api_user_id"], ["api_users.id"], name=op.f("fk_payment_requests_api_user_id_api_users")
        ),
        sa.ForeignKeyConstraint(
            ["channel_id"],
            ["payment_channels.id"],
            name=op.f("fk_payment_requests_channel_id_payment_channels"),
        ),
        sa.ForeignKeyConstraint(
            ["client_id"], ["clients.id"], name=op.f("fk_payment_requests_client_id_clients")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payment_requests")),
    )
    with op.batch_alter_table("payment_requests", schema=None) as batch_op:
        batch_op.create_index(
            "ix_payment_requests_client_created", ["client_id", "mode", "created_at"], unique=False
        )
        batch_op.create_index(
            "uq_payment_requests_open_reference",
            ["client_id", "mode", "account_reference"],
            unique=True,
            postgresql_where=sa.text("status = 'open'"),
            sqlite_where=sa.text("status = 'open'"),
        )

    op.create_table(
        "c2b_payments",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("trans_id", sa.String(length=30), nullable=False),
        sa.Column("client_id", sa.Uuid(), nullable=True),
        sa.Column("mode", sa.String(length=4), nullable=False),
        sa.Column("channel_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("collection_id", sa.Uuid(), nullable=True),
        sa.Column("short_code", sa.String(length=20), nullable=False),
        sa.Column("bill_ref_number", sa.String(length=40), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("msisdn", sa.String(length=80), nullable=False),
        sa.Column("payer_name", sa.String(length=200), nullable=False),
        sa.Column("trans_time", sa.String(length=20), nullable=False),
        sa.Column("payment_request_id", sa.Uuid(), nullable=True),
        sa.Column("overpaid", sa.BigInteger(), nullable=False),
        sa.Column("unmatched_reason", sa.String(length=200), nullable=True),
        sa.Column(
            "body",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["channel_id"], ["payment_channels.id"], name=op.f("fk_c2b_payments_channel_id_payment_channels")
        ),
        sa.ForeignKeyConstraint(
            ["client_id"], ["clients.id"], name=op.f("fk_c2b_payments_client_id_clients")
        ),
        sa.ForeignKeyConstraint(
            ["collection_id"], ["collections.id"], name=op.f("fk_c2b_payments_collection_id_collections")
        ),
        sa.ForeignKeyConstraint(
            ["payment_request_id"],
            ["payment_requests.id"],
            name=op.f("fk_c2b_payments_payment_request_id_payment_requests"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_c2b_payments")),
        sa.UniqueConstraint("trans_id", name=op.f("uq_c2b_payments_trans_id")),
    )
    with op.batch_alter_table("c2b_payments", schema=None) as batch_op:
        batch_op.create_index(
            "ix_c2b_payments_client_created", ["client_id", "mode", "created_at"], unique=False
        )

    op.create_table(
        "payment_request_payments",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("request_id", sa.Uuid(), nullable=False),
        sa.Column("collection_id", sa.Uuid(), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("overpaid", sa.BigInteger(), nullable=False),
        sa.Column("receipt", sa.String(length=30), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["collection_id"],
            ["collections.id"],
            name=op.f("fk_payment_request_payments_collection_id_collections"),
        ),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["payment_requests.id"],
            name=op.f("fk_payment_request_payments_request_id_payment_requests"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payment_request_payments")),
        sa.UniqueConstraint("collection_id", name=op.f("uq_payment_request_payments_collection_id")),
    )
    with op.batch_alter_table("payment_request_payments", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_payment_request_payments_request_id"), ["request_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("payment_request_payments", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_payment_request_payments_request_id"))

    op.drop_table("payment_request_payments")
    with op.batch_alter_table("c2b_payments", schema=None) as batch_op:
        batch_op.drop_index("ix_c2b_payments_client_created")

    op.drop_table("c2b_payments")
    with op.batch_alter_table("payment_requests", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_payment_requests_open_reference",
            postgresql_where=sa.text("status = 'open'"),
            sqlite_where=sa.text("status = 'open'"),
        )
        batch_op.drop_index("ix_payment_requests_client_created")

    op.drop_table("payment_requests")
    with op.batch_alter_table("c2b_channels", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_c2b_channels_client_id"))

    op.drop_table("c2b_channels")
