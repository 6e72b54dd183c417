"""Secrets hashed at rest (CSRF and WhatsApp webhook tokens) and merchant callback attempts recorded before the call

- ``webhook_attempts.outcome``: in_flight (recorded before the POST), delivered, refused or
  unknown (its worker died mid-call); ``duration_ms`` is NULL until the answer came. Existing
  attempts were all answered: delivered when they had no error, else refused.
- ``portal_sessions.csrf_token`` goes: the CSRF token is derived from the session's own token
  (``malipo.identity.sessions.csrf_token_for``). Existing sessions hold a CSRF token that no longer
  matches, so they are signed out: their users sign in again.
- ``whatsapp_sessions.webhook_token`` goes: webhook URLs are derived from the session's id with the
  secret key (``malipo.messaging.whatsapp.webhook_token``). The URLs already given out keep working:
  only their SHA-256 is kept, in ``legacy_webhook_token_hash``.
- ``mailers.sandbox``: registered with a sandbox key, so it may reach a loopback or private SMTP
  host unless MALIPO_SMTP_ALLOW_PRIVATE says otherwise. Mailers registered before are not (register
  them again with a sandbox key, or set MALIPO_SMTP_ALLOW_PRIVATE=true).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07 02:00:00
"""

import hashlib
import secrets
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_attempts = sa.table(
    "webhook_attempts",
    sa.column("outcome", sa.String),
    sa.column("error", sa.Text),
    sa.column("duration_ms", sa.Integer),
)
_whatsapp = sa.table(
    "whatsapp_sessions",
    sa.column("id", sa.Uuid),
    sa.column("webhook_token", sa.String),
    sa.column("legacy_webhook_token_hash", sa.String),
)


def upgrade() -> None:
    with op.batch_alter_table("mailers", schema=None) as batch_op:
        batch_op.add_column(sa.Column("sandbox", sa.Boolean(), server_default=sa.false(), nullable=False))

    with op.batch_alter_table("webhook_attempts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("outcome", sa.String(length=10), nullable=True))
        batch_op.alter_column("duration_ms", existing_type=sa.Integer(), nullable=True)
    op.execute(
        _attempts.update().values(
            outcome=sa.case((_attempts.c.error.is_(None), "delivered"), else_="refused")
        )
    )
    with op.batch_alter_table("webhook_attempts", schema=None) as batch_op:
        batch_op.alter_column("outcome", existing_type=sa.String(length=10), nullable=False)

    op.execute(sa.text("DELETE FROM portal_sessions"))
    with op.batch_alter_table("portal_sessions", schema=None) as batch_op:
        batch_op.drop_column("csrf_token")

    with op.batch_alter_table("whatsapp_sessions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("legacy_webhook_token_hash", sa.String(length=64), nullable=True))
    bind = op.get_bind()
    for session_id, token in bind.execute(sa.select(_whatsapp.c.id, _whatsapp.c.webhook_token)).all():
        digest = hashlib.sha256(token.encode()).hexdigest()
        bind.execute(
            _whatsapp.update().where(_whatsapp.c.id == session_id).values(legacy_webhook_token_hash=digest)
        )
    with op.batch_alter_table("whatsapp_sessions", schema=None) as batch_op:
        batch_op.drop_constraint("uq_whatsapp_sessions_webhook_token", type_="unique")
        batch_op.drop_column("webhook_token")
        batch_op.create_unique_constraint(
            batch_op.f("uq_whatsapp_sessions_legacy_webhook_token_hash"), ["legacy_webhook_token_hash"]
        )


def downgrade() -> None:
    # Webhook URLs derived since cannot be written back as tokens: every session gets a new one
    # (re-register the URL with Meta after a downgrade).
    with op.batch_alter_table("whatsapp_sessions", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_whatsapp_sessions_legacy_webhook_token_hash"), type_="unique")
        batch_op.add_column(sa.Column("webhook_token", sa.String(length=64), nullable=True))
    bind = op.get_bind()
    for (session_id,) in bind.execute(sa.select(_whatsapp.c.id)).all():
        bind.execute(
            _whatsapp.update()
            .where(_whatsapp.c.id == session_id)
            .values(webhook_token=secrets.token_urlsafe(24))
        )
    with op.batch_alter_table("whatsapp_sessions", schema=None) as batch_op:
        batch_op.alter_column("webhook_token", existing_type=sa.String(length=64), nullable=False)
        batch_op.drop_column("legacy_webhook_token_hash")
        batch_op.create_unique_constraint(batch_op.f("uq_whatsapp_sessions_webhook_token"), ["webhook_token"])

    op.execute(sa.text("DELETE FROM portal_sessions"))
    with op.batch_alter_table("portal_sessions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("csrf_token", sa.String(length=64), nullable=False, server_default=""))
    with op.batch_alter_table("portal_sessions", schema=None) as batch_op:
        batch_op.alter_column("csrf_token", existing_type=sa.String(length=64), server_default=None)

    # Attempts never answered are dropped (the old schema has no place for them).
    op.execute(_attempts.delete().where(_attempts.c.duration_ms.is_(None)))
    with op.batch_alter_table("webhook_attempts", schema=None) as batch_op:
        batch_op.alter_column("duration_ms", existing_type=sa.Integer(), nullable=False)
        batch_op.drop_column("outcome")

    with op.batch_alter_table("mailers", schema=None) as batch_op:
        batch_op.drop_column("sandbox")
