"""Migration 0009 on a database with rows: WhatsApp webhook URLs given out before keep working (only
their hash is kept), portal sessions are signed out (their CSRF token is no longer stored), callback
attempts made before all read as answered, and mailers made before count as live ones."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy import text

from malipo.config import Settings
from malipo.core.crypto import sha256_hex
from malipo.db import Database, UTCDateTime, create_engine
from malipo.identity import service as identity
from malipo.identity.models import ApiUser, ClientStatus, ClientType, PortalUser
from malipo.migrate import upgrade
from malipo.webhooks.models import WebhookDelivery
from malipo.whatsapp import service as whatsapp


def _tables_at_0008() -> dict[str, sa.TableClause]:
    """The columns 0009 changes, as they were before it."""
    return {
        "whatsapp_sessions": sa.table(
            "whatsapp_sessions",
            sa.column("id", sa.Uuid),
            sa.column("client_id", sa.Uuid),
            sa.column("name", sa.String),
            sa.column("backend", sa.String),
            sa.column("webhook_token", sa.String),
            sa.column("created_at", UTCDateTime),
            sa.column("updated_at", UTCDateTime),
        ),
        "portal_sessions": sa.table(
            "portal_sessions",
            sa.column("id", sa.Uuid),
            sa.column("user_id", sa.Uuid),
            sa.column("token_hash", sa.String),
            sa.column("csrf_token", sa.String),
            sa.column("created_at", UTCDateTime),
            sa.column("expires_at", UTCDateTime),
        ),
        "webhook_attempts": sa.table(
            "webhook_attempts",
            sa.column("id", sa.Uuid),
            sa.column("delivery_id", sa.Uuid),
            sa.column("number", sa.Integer),
            sa.column("started_at", UTCDateTime),
            sa.column("duration_ms", sa.Integer),
            sa.column("status_code", sa.Integer),
            sa.column("error", sa.Text),
        ),
        "mailers": sa.table(
            "mailers",
            sa.column("id", sa.Uuid),
            sa.column("client_id", sa.Uuid),
            sa.column("api_user_id", sa.Uuid),
            sa.column("host", sa.String),
            sa.column("port", sa.Integer),
            sa.column("username", sa.String),
            sa.column("password", sa.Text),
            sa.column("tls", sa.String),
            sa.column("insecure", sa.Boolean),
            sa.column("created_at", UTCDateTime),
            sa.column("updated_at", UTCDateTime),
        ),
    }


NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
LEGACY_TOKEN = "legacy-webhook-token-Qx81"
CSRF = "a-csrf-token-kept-in-the-clear"


async def test_0009_converts_or_signs_out_what_it_must(databases: object, settings: Settings) -> None:
    url = databases.empty()  # type: ignore[attr-defined]
    engine = create_engine(url)
    try:
        await upgrade(engine, "0008")
    finally:
        await engine.dispose()
    db = Database.from_url(url)
    try:
        async with db.transaction() as session:
            client = await identity.create_client(
                session, name="Old shop", client_type=ClientType.COMPANY, email="old@shop.example",
                status=ClientStatus.ACTIVE, now=NOW,
            )  # fmt: skip
            user = PortalUser(email="old@shop.example", user_name="old", password_hash="x", created_at=NOW)
            delivery = WebhookDelivery(
                client_id=client.id, mode="test", event="collection.success", subject_reference="OLD1",
                url="http://merchant.example/cb", payload={"status": True}, status="failed", attempts=2,
                created_at=NOW,
            )  # fmt: skip
            session.add_all([user, delivery])
            await session.flush()
            tables = _tables_at_0008()
            await session.execute(
                tables["whatsapp_sessions"].insert().values(
                    id=uuid.uuid4(), client_id=client.id, name="old", backend="cloud",
                    webhook_token=LEGACY_TOKEN, created_at=NOW, updated_at=NOW,
                )
            )  # fmt: skip
            await session.execute(
                tables["portal_sessions"].insert().values(
                    id=uuid.uuid4(), user_id=user.id, token_hash="h" * 64, csrf_token=CSRF, created_at=NOW,
                    expires_at=NOW,
                )
            )  # fmt: skip
            for number, code, error in ((1, 200, None), (2, 500, "HTTP 500: down")):
                await session.execute(
                    tables["webhook_attempts"].insert().values(
                        id=uuid.uuid4(), delivery_id=delivery.id, number=number, started_at=NOW,
                        duration_ms=12, status_code=code, error=error,
                    )
                )  # fmt: skip
            roles = await identity.ensure_system_roles(session, NOW)
            api_user = ApiUser(
                client_id=client.id, role_id=roles["Developer"].id, developer_name="dev",
                developer_email="dev@shop.example", developer_phone_number="+254700000009",
                api_username="old-shop-dev", api_password_hash="x", created_at=NOW,
            )  # fmt: skip
            session.add(api_user)
            await session.flush()
            api_user_id = api_user.id
            await session.execute(
                tables["mailers"].insert().values(
                    id=uuid.uuid4(), client_id=client.id, api_user_id=api_user_id, host="smtp.example",
                    port=587, username="u", password="p", tls="starttls", insecure=False,
                    created_at=NOW, updated_at=NOW,
                )
            )  # fmt: skip
    finally:
        await db.dispose()

    engine = create_engine(url)
    try:
        await upgrade(engine)
    finally:
        await engine.dispose()

    db = Database.from_url(url)
    try:
        async with db.transaction() as session:
            stored = [
                str(value)
                for table in ("whatsapp_sessions", "portal_sessions")
                for row in (await session.execute(text(f"SELECT * FROM {table}"))).all()
                for value in row
            ]
            assert LEGACY_TOKEN not in " ".join(stored)
            assert CSRF not in " ".join(stored)
            assert sha256_hex(LEGACY_TOKEN) in stored
            found = await whatsapp.session_by_webhook_token(session, settings, LEGACY_TOKEN)
            assert found is not None
            assert found.name == "old"
            assert await whatsapp.session_by_webhook_token(session, settings, LEGACY_TOKEN + "x") is None
            portal = (await session.execute(text("SELECT count(*) FROM portal_sessions"))).scalar()
            assert portal == 0, "sessions whose CSRF token was stored are signed out"
            attempts = (
                await session.execute(text("SELECT number, outcome FROM webhook_attempts ORDER BY number"))
            ).all()
            assert [tuple(a) for a in attempts] == [(1, "delivered"), (2, "refused")]
            sandbox = (await session.execute(text("SELECT sandbox FROM mailers"))).scalars().all()
            assert [bool(value) for value in sandbox] == [False], "mailers made before count as live ones"
    finally:
        await db.dispose()
