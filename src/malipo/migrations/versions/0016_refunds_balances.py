"""Refunds by reversal, and the rails' balances

- ``refunds``: one reversal asked of the rail for (part of) a collection: its amount, reason,
  state (pending, completed, failed), the hold on the payments wallet while pending, the journal
  once completed, Daraja's ids and result.
- ``rail_balances``: each ask of a rail's balance (per mode, rail and shortcode) and its answer
  (every account's amounts in minor units), kept as a history.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07 18:45:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "refunds",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("client_id", sa.Uuid(), nullable=False),
        sa.Column("mode", sa.String(length=4), nullable=False),
        sa.Column("collection_id", sa.Uuid(), nullable=False),
        sa.Column("reference", sa.String(length=20), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("reason", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("callback_token_hash", sa.String(length=64), nullable=False),
        sa.Column("hold_id", sa.Uuid(), nullable=False),
        sa.Column("journal_id", sa.Uuid(), nullable=True),
        sa.Column("originator_conversation_id", sa.String(length=100), nullable=True),
        sa.Column("conversation_id", sa.String(length=60), nullable=True),
        sa.Column("reversal_receipt", sa.String(length=30), nullable=True),
        sa.Column("result_code", sa.String(length=20), nullable=True),
        sa.Column("result_desc", sa.String(length=300), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["client_id"], ["clients.id"], name=op.f("fk_refunds_client_id_clients")),
        sa.ForeignKeyConstraint(
            ["collection_id"], ["collections.id"], name=op.f("fk_refunds_collection_id_collections")
        ),
        sa.ForeignKeyConstraint(
            ["hold_id"], ["ledger_holds.id"], name=op.f("fk_refunds_hold_id_ledger_holds")
        ),
        sa.ForeignKeyConstraint(
            ["journal_id"], ["ledger_journals.id"], name=op.f("fk_refunds_journal_id_ledger_journals")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_refunds")),
        sa.UniqueConstraint("callback_token_hash", name=op.f("uq_refunds_callback_token_hash")),
        sa.UniqueConstraint("reference", name=op.f("uq_refunds_reference")),
    )
    with op.batch_alter_table("refunds", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_refunds_collection_id"), ["collection_id"], unique=False)
        batch_op.create_index("ix_refunds_client_created", ["client_id", "mode", "created_at"], unique=False)

    op.create_table(
        "rail_balances",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("mode", sa.String(length=4), nullable=False),
        sa.Column("rail", sa.String(length=20), nullable=False),
        sa.Column("party", sa.String(length=40), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("callback_token_hash", sa.String(length=64), nullable=False),
        sa.Column("originator_conversation_id", sa.String(length=100), nullable=True),
        sa.Column("conversation_id", sa.String(length=60), nullable=True),
        sa.Column(
            "accounts",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("result_code", sa.String(length=20), nullable=True),
        sa.Column("result_desc", sa.String(length=300), nullable=True),
        sa.Column("rail_time", sa.String(length=20), nullable=True),
        sa.Column("asked_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("answered_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rail_balances")),
        sa.UniqueConstraint("callback_token_hash", name=op.f("uq_rail_balances_callback_token_hash")),
    )
    with op.batch_alter_table("rail_balances", schema=None) as batch_op:
        batch_op.create_index("ix_rail_balances_latest", ["mode", "rail", "party", "asked_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("rail_balances", schema=None) as batch_op:
        batch_op.drop_index("ix_rail_balances_latest")

    op.drop_table("rail_balances")
    with op.batch_alter_table("refunds", schema=None) as batch_op:
        batch_op.drop_index("ix_refunds_client_created")
        batch_op.drop_index(batch_op.f("ix_refunds_collection_id"))

    op.drop_table("refunds")
