"""Callbacks checked against the request: items held for review

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07 02:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "callback_reviews",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("subject_id", sa.Uuid(), nullable=False),
        sa.Column("client_id", sa.Uuid(), nullable=False),
        sa.Column("mode", sa.String(length=4), nullable=False),
        sa.Column("reference", sa.String(length=20), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("asked_amount", sa.BigInteger(), nullable=False),
        sa.Column("received_amount", sa.BigInteger(), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("asked_party", sa.String(length=60), nullable=True),
        sa.Column("received_party", sa.String(length=120), nullable=True),
        sa.Column("receipt", sa.String(length=30), nullable=True),
        sa.Column("reason", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resolved_by", sa.Uuid(), nullable=True),
        sa.Column("journal_id", sa.Uuid(), nullable=True),
        sa.ForeignKeyConstraint(
            ["client_id"], ["clients.id"], name=op.f("fk_callback_reviews_client_id_clients")
        ),
        sa.ForeignKeyConstraint(
            ["journal_id"],
            ["ledger_journals.id"],
            name=op.f("fk_callback_reviews_journal_id_ledger_journals"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_callback_reviews")),
        sa.UniqueConstraint("kind", "subject_id", name=op.f("uq_callback_reviews_kind_subject_id")),
    )
    op.create_index(
        "ix_callback_reviews_status_created", "callback_reviews", ["status", "created_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_callback_reviews_status_created", table_name="callback_reviews")
    op.drop_table("callback_reviews")
