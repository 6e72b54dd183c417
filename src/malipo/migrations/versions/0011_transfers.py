"""Bank transfers with fraud checks and a one-time code; the fraud rules and block list

- ``transfers``: one row per transfer out of a payments wallet (its holds, the fraud verdict and
  flags, the one-time code's HMAC, the bank rail's ids and reason code).
- ``fraud_rules``: a client's thresholds, set by the operator (none: the defaults).
- ``fraud_blocklist``: destinations a client (or, with no client, every client) may not pay.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07 13:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "transfers",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("client_id", sa.Uuid(), nullable=False),
        sa.Column("mode", sa.String(length=4), nullable=False),
        sa.Column("api_user_id", sa.Uuid(), nullable=True),
        sa.Column("reference", sa.String(length=20), nullable=False),
        sa.Column("kind", sa.String(length=13), nullable=False),
        sa.Column("account_number", sa.String(length=34), nullable=False),
        sa.Column("bank_code", sa.String(length=3), nullable=True),
        sa.Column("bank_name", sa.String(length=120), nullable=True),
        sa.Column("destination_client_id", sa.Uuid(), nullable=True),
        sa.Column("payout_id", sa.Uuid(), nullable=True),
        sa.Column("beneficiary_name", sa.String(length=140), nullable=True),
        sa.Column("entry_reference", sa.String(length=100), nullable=True),
        sa.Column("batch_id", sa.Uuid(), nullable=True),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("fee", sa.BigInteger(), nullable=False),
        sa.Column("narration", sa.String(length=140), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("decision", sa.String(length=5), nullable=False),
        sa.Column("risk_score", sa.Integer(), nullable=False),
        sa.Column("flags", JSON, nullable=False),
        sa.Column("hold_id", sa.Uuid(), nullable=True),
        sa.Column("fee_hold_id", sa.Uuid(), nullable=True),
        sa.Column("otp_hash", sa.String(length=64), nullable=True),
        sa.Column("otp_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("otp_sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("otp_failures", sa.Integer(), nullable=False),
        sa.Column("otp_resends", sa.Integer(), nullable=False),
        sa.Column("end_to_end_id", sa.String(length=35), nullable=False),
        sa.Column("callback_token_hash", sa.String(length=64), nullable=False),
        sa.Column("provider_reference", sa.String(length=64), nullable=True),
        sa.Column("reason_code", sa.String(length=8), nullable=True),
        sa.Column("result_desc", sa.String(length=300), nullable=True),
        sa.Column("queries", sa.Integer(), nullable=False),
        sa.Column("journal_id", sa.Uuid(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("authorized_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["api_user_id"], ["api_users.id"], name=op.f("fk_transfers_api_user_id_api_users")),
        sa.ForeignKeyConstraint(["client_id"], ["clients.id"], name=op.f("fk_transfers_client_id_clients")),
        sa.ForeignKeyConstraint(
            ["destination_client_id"], ["clients.id"], name=op.f("fk_transfers_destination_client_id_clients")
        ),
        sa.ForeignKeyConstraint(["payout_id"], ["payouts.id"], name=op.f("fk_transfers_payout_id_payouts")),
        sa.ForeignKeyConstraint(["fee_hold_id"], ["ledger_holds.id"], name=op.f("fk_transfers_fee_hold_id_ledger_holds")),
        sa.ForeignKeyConstraint(["hold_id"], ["ledger_holds.id"], name=op.f("fk_transfers_hold_id_ledger_holds")),
        sa.ForeignKeyConstraint(["journal_id"], ["ledger_journals.id"], name=op.f("fk_transfers_journal_id_ledger_journals")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_transfers")),
        sa.UniqueConstraint("callback_token_hash", name=op.f("uq_transfers_callback_token_hash")),
        sa.UniqueConstraint("end_to_end_id", name=op.f("uq_transfers_end_to_end_id")),
        sa.UniqueConstraint("reference", name=op.f("uq_transfers_reference")),
    )  # fmt: skip
    op.create_index("ix_transfers_client_created", "transfers", ["client_id", "mode", "created_at"])
    op.create_index(
        "ix_transfers_destination", "transfers", ["client_id", "mode", "account_number", "created_at"]
    )
    op.create_index("ix_transfers_api_user", "transfers", ["api_user_id", "created_at"])
    op.create_index(
        "ix_transfers_destination_client", "transfers", ["destination_client_id", "mode", "created_at"]
    )
    op.create_index(op.f("ix_transfers_batch_id"), "transfers", ["batch_id"])
    op.create_table(
        "fraud_rules",
        sa.Column("client_id", sa.Uuid(), nullable=False),
        sa.Column("max_amount", sa.BigInteger(), nullable=False),
        sa.Column("daily_count", sa.BigInteger(), nullable=False),
        sa.Column("daily_value", sa.BigInteger(), nullable=False),
        sa.Column("destination_daily_count", sa.BigInteger(), nullable=False),
        sa.Column("destination_daily_value", sa.BigInteger(), nullable=False),
        sa.Column("duplicate_window_minutes", sa.BigInteger(), nullable=False),
        sa.Column("new_destination_amount", sa.BigInteger(), nullable=False),
        sa.Column("otp_score", sa.BigInteger(), nullable=False),
        sa.Column("block_score", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["client_id"], ["clients.id"], name=op.f("fk_fraud_rules_client_id_clients")),
        sa.PrimaryKeyConstraint("client_id", name=op.f("pk_fraud_rules")),
    )  # fmt: skip
    op.create_table(
        "fraud_blocklist",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("client_id", sa.Uuid(), nullable=True),
        sa.Column("destination", sa.String(length=34), nullable=False),
        sa.Column("reason", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["client_id"], ["clients.id"], name=op.f("fk_fraud_blocklist_client_id_clients")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fraud_blocklist")),
        sa.UniqueConstraint("client_id", "destination", name=op.f("uq_fraud_blocklist_client_id_destination")),
    )  # fmt: skip
    op.create_index(op.f("ix_fraud_blocklist_client_id"), "fraud_blocklist", ["client_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_fraud_blocklist_client_id"), table_name="fraud_blocklist")
    op.drop_table("fraud_blocklist")
    op.drop_table("fraud_rules")
    op.drop_index(op.f("ix_transfers_batch_id"), table_name="transfers")
    op.drop_index("ix_transfers_destination_client", table_name="transfers")
    op.drop_index("ix_transfers_api_user", table_name="transfers")
    op.drop_index("ix_transfers_destination", table_name="transfers")
    op.drop_index("ix_transfers_client_created", table_name="transfers")
    op.drop_table("transfers")
