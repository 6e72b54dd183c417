"""Daily reconciliation against the rails

- ``reconciliation_runs``: one per day and mode: its totals per currency and rail (rail total,
  malipo total, matched, each exception kind, and the ledger figure they must tie to) and why a
  rail's part could not be reconciled.
- ``reconciliation_items``: each rail transaction or malipo record of the run, matched or an
  exception (missing in malipo, missing at the rail, amount mismatch), with the suspense journal
  of a receipt malipo had no record of and how an operator resolved it.
- The ledger gains a system account kind ``write_off`` (no schema change: kinds are strings).

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-07 18:38:38
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "reconciliation_runs",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("mode", sa.String(length=4), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column(
            "notes",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "totals",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("runs", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reconciliation_runs")),
        sa.UniqueConstraint("day", "mode", name=op.f("uq_reconciliation_runs_day_mode")),
    )
    op.create_table(
        "reconciliation_items",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("run_id", sa.Uuid(), nullable=False),
        sa.Column("match_key", sa.String(length=80), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("rail", sa.String(length=20), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("receipt", sa.String(length=40), nullable=True),
        sa.Column("rail_amount", sa.BigInteger(), nullable=True),
        sa.Column("malipo_amount", sa.BigInteger(), nullable=True),
        sa.Column("party", sa.String(length=40), nullable=True),
        sa.Column("bill_reference", sa.String(length=100), nullable=True),
        sa.Column("rail_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("collection_id", sa.Uuid(), nullable=True),
        sa.Column("payout_id", sa.Uuid(), nullable=True),
        sa.Column("client_id", sa.Uuid(), nullable=True),
        sa.Column("detail", sa.String(length=300), nullable=False),
        sa.Column("suspense_journal_id", sa.Uuid(), nullable=True),
        sa.Column("resolution", sa.String(length=12), nullable=True),
        sa.Column("resolution_note", sa.Text(), nullable=True),
        sa.Column("resolution_journal_id", sa.Uuid(), nullable=True),
        sa.Column("resolution_reference", sa.String(length=80), nullable=True),
        sa.Column("resolved_by", sa.Uuid(), nullable=True),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["reconciliation_runs.id"],
            name=op.f("fk_reconciliation_items_run_id_reconciliation_runs"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reconciliation_items")),
        sa.UniqueConstraint("run_id", "match_key", name=op.f("uq_reconciliation_items_run_id_match_key")),
    )
    with op.batch_alter_table("reconciliation_items", schema=None) as batch_op:
        batch_op.create_index("ix_reconciliation_items_run_kind", ["run_id", "kind"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("reconciliation_items", schema=None) as batch_op:
        batch_op.drop_index("ix_reconciliation_items_run_kind")

    op.drop_table("reconciliation_items")
    op.drop_table("reconciliation_runs")
