"""Migration 0014 (checkout) on a database with rows: callbacks and their attempts made before are
kept (SQLite copies the table to widen the column), a checkout session's id then fits as a
delivery's subject, and going back down drops only the deliveries the narrower column cannot hold."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import select

from malipo.identity import service as identity
from malipo.identity.models import ClientStatus, ClientType
from malipo.webhooks.models import WebhookAttempt, WebhookDelivery
from tests.fixtures.migrations import fresh_database, migrate_to

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
SESSION_ID = "cs_" + "k" * 24  # a checkout session's public id: 27 characters


def _delivery(client_id: uuid.UUID, subject: str) -> WebhookDelivery:
    return WebhookDelivery(
        client_id=client_id, mode="test", event="collection.success", subject_reference=subject,
        url="http://merchant.example/cb", payload={"status": True}, status="failed", attempts=2,
        created_at=NOW,
    )  # fmt: skip


def _attempt(delivery_id: uuid.UUID, number: int) -> WebhookAttempt:
    return WebhookAttempt(
        delivery_id=delivery_id, number=number, outcome="refused", started_at=NOW, duration_ms=12,
        status_code=500, error="HTTP 500: down",
    )  # fmt: skip


Rows = tuple[list[tuple[str, uuid.UUID]], list[tuple[uuid.UUID, int, datetime]]]


async def _rows(url: str) -> Rows:
    async with fresh_database(url) as db, db.transaction() as session:
        deliveries = (
            await session.execute(select(WebhookDelivery.subject_reference, WebhookDelivery.id))
        ).all()
        attempts = (
            await session.execute(
                select(WebhookAttempt.delivery_id, WebhookAttempt.number, WebhookAttempt.started_at).order_by(
                    WebhookAttempt.number
                )
            )
        ).all()
    return sorted((s, i) for s, i in deliveries), [(d, n, t) for d, n, t in attempts]


async def test_0014_keeps_callbacks_and_takes_a_checkout_session_id(databases: object) -> None:
    url = databases.empty()  # type: ignore[attr-defined]
    await migrate_to(url, "0013")
    async with fresh_database(url) as db, db.transaction() as session:
        client = await identity.create_client(
            session, name="Old shop", client_type=ClientType.COMPANY, email="old@shop.example",
            status=ClientStatus.ACTIVE, now=NOW,
        )  # fmt: skip
        client_id = client.id
        old = _delivery(client_id, "OLDREF0001")
        session.add(old)
        await session.flush()
        session.add_all([_attempt(old.id, 1), _attempt(old.id, 2)])
    before = await _rows(url)
    assert len(before[1]) == 2

    await migrate_to(url, "head")
    assert await _rows(url) == before, "the deliveries and their attempts are kept as they were"
    async with fresh_database(url) as db, db.transaction() as session:
        checkout = _delivery(client_id, SESSION_ID)
        session.add(checkout)
        await session.flush()
        session.add(_attempt(checkout.id, 3))
    subjects = [subject for subject, _id in (await _rows(url))[0]]
    assert subjects == ["OLDREF0001", SESSION_ID]

    await migrate_to(url, "0013", down=True)
    assert await _rows(url) == before, "only what the narrower column cannot hold is dropped"
