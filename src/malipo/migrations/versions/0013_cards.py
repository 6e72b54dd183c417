"""The card vault and card authorisations

- ``card_tokens``: a tokenised card of a client and mode: brand, BIN, last 4, expiry, the PAN as
  AES-GCM ciphertext with its key id (for rotation) and a keyed HMAC fingerprint. Never the CVV.
- ``card_authorizations``: one row per authorisation: its state, the ledger hold on card clearing,
  the acquirer's answer (ISO 8583 response code, auth code, 3-D Secure transaction and result),
  what was captured and refunded, and when its hold lapses.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-08 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "card_tokens",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("token", sa.String(length=40), nullable=False),
        sa.Column("client_id", sa.Uuid(), nullable=False),
        sa.Column("mode", sa.String(length=4), nullable=False),
        sa.Column("brand", sa.String(length=12), nullable=False),
        sa.Column("bin", sa.String(length=8), nullable=False),
        sa.Column("last4", sa.String(length=4), nullable=False),
        sa.Column("expiry_month", sa.Integer(), nullable=False),
        sa.Column("expiry_year", sa.Integer(), nullable=False),
        sa.Column("pan_ciphertext", sa.String(length=200), nullable=False),
        sa.Column("key_id", sa.String(length=16), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["client_id"], ["clients.id"], name=op.f("fk_card_tokens_client_id_clients")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_card_tokens")),
        sa.UniqueConstraint("token", name=op.f("uq_card_tokens_token")),
    )  # fmt: skip
    op.create_index("ix_card_tokens_fingerprint", "card_tokens", ["client_id", "mode", "fingerprint"])
    op.create_table(
        "card_authorizations",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("client_id", sa.Uuid(), nullable=False),
        sa.Column("mode", sa.String(length=4), nullable=False),
        sa.Column("token_id", sa.Uuid(), nullable=False),
        sa.Column("reference", sa.String(length=40), nullable=False),
        sa.Column("order_id", sa.String(length=64), nullable=True),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("brand", sa.String(length=12), nullable=False),
        sa.Column("bin", sa.String(length=8), nullable=False),
        sa.Column("last4", sa.String(length=4), nullable=False),
        sa.Column("hold_id", sa.Uuid(), nullable=True),
        sa.Column("captured_amount", sa.BigInteger(), nullable=False),
        sa.Column("refunded_amount", sa.BigInteger(), nullable=False),
        sa.Column("refunds", sa.Integer(), nullable=False),
        sa.Column("fee", sa.BigInteger(), nullable=False),
        sa.Column("response_code", sa.String(length=4), nullable=True),
        sa.Column("response_desc", sa.String(length=200), nullable=True),
        sa.Column("auth_code", sa.String(length=12), nullable=True),
        sa.Column("acquirer_reference", sa.String(length=64), nullable=True),
        sa.Column("acs_url", sa.String(length=500), nullable=True),
        sa.Column("three_ds_trans_id", sa.String(length=64), nullable=True),
        sa.Column("trans_status", sa.String(length=1), nullable=True),
        sa.Column("eci", sa.String(length=2), nullable=True),
        sa.Column("capture_journal_id", sa.Uuid(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("authorized_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("captured_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["client_id"], ["clients.id"], name=op.f("fk_card_authorizations_client_id_clients")),
        sa.ForeignKeyConstraint(["token_id"], ["card_tokens.id"], name=op.f("fk_card_authorizations_token_id_card_tokens")),
        sa.ForeignKeyConstraint(["hold_id"], ["ledger_holds.id"], name=op.f("fk_card_authorizations_hold_id_ledger_holds")),
        sa.ForeignKeyConstraint(
            ["capture_journal_id"], ["ledger_journals.id"],
            name=op.f("fk_card_authorizations_capture_journal_id_ledger_journals"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_card_authorizations")),
        sa.UniqueConstraint("reference", name=op.f("uq_card_authorizations_reference")),
    )  # fmt: skip
    op.create_index(
        "ix_card_authorizations_client_created", "card_authorizations", ["client_id", "mode", "created_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_card_authorizations_client_created", table_name="card_authorizations")
    op.drop_table("card_authorizations")
    op.drop_index("ix_card_tokens_fingerprint", table_name="card_tokens")
    op.drop_table("card_tokens")
