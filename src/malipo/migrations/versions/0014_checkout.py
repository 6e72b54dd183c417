"""Hosted checkout sessions and payment links

- ``payment_links``: a merchant's standing payment page (``/pay/{slug}``): a fixed amount or the
  payer's within bounds, the channel it pays into, where its events go.
- ``checkout_sessions``: one payment on the hosted page ``/checkout/{public_id}``: its amount,
  state (open, pending, completed, expired), the attempt in flight or that paid (an M-Pesa
  collection or a card authorisation), and its expiry.
- ``webhook_deliveries.subject_reference`` widened to 40 characters: a checkout session's id
  (``cs_`` and 24 characters) is the reference of its webhooks.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07 15:36:01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    _subject_reference(20, 40)
    op.create_table(
        "payment_links",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("slug", sa.String(length=40), nullable=False),
        sa.Column("client_id", sa.Uuid(), nullable=False),
        sa.Column("mode", sa.String(length=4), nullable=False),
        sa.Column("api_user_id", sa.Uuid(), nullable=True),
        sa.Column("title", sa.String(length=100), nullable=False),
        sa.Column("description", sa.String(length=500), nullable=True),
        sa.Column("amount", sa.BigInteger(), nullable=True),
        sa.Column("min_amount", sa.BigInteger(), nullable=False),
        sa.Column("max_amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("channel_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("callback_url", sa.String(length=2000), nullable=True),
        sa.Column("success_url", sa.String(length=400), nullable=True),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["api_user_id"], ["api_users.id"], name=op.f("fk_payment_links_api_user_id_api_users")
        ),
        sa.ForeignKeyConstraint(
            ["channel_id"], ["payment_channels.id"], name=op.f("fk_payment_links_channel_id_payment_channels")
        ),
        sa.ForeignKeyConstraint(
            ["client_id"], ["clients.id"], name=op.f("fk_payment_links_client_id_clients")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payment_links")),
        sa.UniqueConstraint("slug", name=op.f("uq_payment_links_slug")),
    )
    with op.batch_alter_table("payment_links", schema=None) as batch_op:
        batch_op.create_index(
            "ix_payment_links_client_created", ["client_id", "mode", "created_at"], unique=False
        )

    op.create_table(
        "checkout_sessions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("public_id", sa.String(length=40), nullable=False),
        sa.Column("client_id", sa.Uuid(), nullable=False),
        sa.Column("mode", sa.String(length=4), nullable=False),
        sa.Column("api_user_id", sa.Uuid(), nullable=True),
        sa.Column("link_id", sa.Uuid(), nullable=True),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("description", sa.String(length=200), nullable=True),
        sa.Column("order_id", sa.String(length=64), nullable=True),
        sa.Column("return_url", sa.String(length=400), nullable=True),
        sa.Column("callback_url", sa.String(length=2000), nullable=True),
        sa.Column("channel_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("method", sa.String(length=8), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("collection_id", sa.Uuid(), nullable=True),
        sa.Column("card_authorization_id", sa.Uuid(), nullable=True),
        sa.Column("payer_phone", sa.String(length=20), nullable=True),
        sa.Column("last_error", sa.String(length=300), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["api_user_id"], ["api_users.id"], name=op.f("fk_checkout_sessions_api_user_id_api_users")
        ),
        sa.ForeignKeyConstraint(
            ["card_authorization_id"],
            ["card_authorizations.id"],
            name=op.f("fk_checkout_sessions_card_authorization_id_card_authorizations"),
        ),
        sa.ForeignKeyConstraint(
            ["channel_id"],
            ["payment_channels.id"],
            name=op.f("fk_checkout_sessions_channel_id_payment_channels"),
        ),
        sa.ForeignKeyConstraint(
            ["client_id"], ["clients.id"], name=op.f("fk_checkout_sessions_client_id_clients")
        ),
        sa.ForeignKeyConstraint(
            ["collection_id"], ["collections.id"], name=op.f("fk_checkout_sessions_collection_id_collections")
        ),
        sa.ForeignKeyConstraint(
            ["link_id"], ["payment_links.id"], name=op.f("fk_checkout_sessions_link_id_payment_links")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_checkout_sessions")),
        sa.UniqueConstraint("public_id", name=op.f("uq_checkout_sessions_public_id")),
    )
    with op.batch_alter_table("checkout_sessions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_checkout_sessions_card_authorization_id"), ["card_authorization_id"], unique=False
        )
        batch_op.create_index(
            "ix_checkout_sessions_client_created", ["client_id", "mode", "created_at"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_checkout_sessions_collection_id"), ["collection_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("checkout_sessions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_checkout_sessions_collection_id"))
        batch_op.drop_index("ix_checkout_sessions_client_created")
        batch_op.drop_index(batch_op.f("ix_checkout_sessions_card_authorization_id"))

    op.drop_table("checkout_sessions")
    with op.batch_alter_table("payment_links", schema=None) as batch_op:
        batch_op.drop_index("ix_payment_links_client_created")

    op.drop_table("payment_links")
    # The older column cannot hold a checkout session's id: those deliveries (and their attempts) go.
    long = "(SELECT id FROM webhook_deliveries WHERE length(subject_reference) > 20)"
    op.execute(sa.text(f"DELETE FROM webhook_attempts WHERE delivery_id IN {long}"))  # noqa: S608
    op.execute(sa.text("DELETE FROM webhook_deliveries WHERE length(subject_reference) > 20"))
    _subject_reference(40, 20)


def _subject_reference(length_from: int, length_to: int) -> None:
    # SQLite alters a column by copying the table and dropping the old one, and with foreign keys
    # on (they cannot be turned off inside the migration's transaction) the drop is refused while
    # webhook_attempts rows point at it: those are set aside meanwhile. PostgreSQL alters in place.
    sqlite = op.get_context().dialect.name == "sqlite"
    if sqlite:
        op.execute(sa.text("CREATE TEMPORARY TABLE attempts_aside AS SELECT * FROM webhook_attempts"))
        op.execute(sa.text("DELETE FROM webhook_attempts"))
    with op.batch_alter_table("webhook_deliveries", schema=None) as batch_op:
        batch_op.alter_column(
            "subject_reference",
            existing_type=sa.String(length=length_from),
            type_=sa.String(length=length_to),
            existing_nullable=False,
        )
    if sqlite:
        op.execute(sa.text("INSERT INTO webhook_attempts SELECT * FROM attempts_aside"))
        op.execute(sa.text("DROP TABLE attempts_aside"))
