"""Queue a callback to a merchant's URL; the worker delivers it (``webhooks.tasks``)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from malipo.core.ids import new_id
from malipo.webhooks.models import DeliveryStatus, WebhookAttempt, WebhookDelivery
from malipo.worker.registry import enqueue

DELIVER_JOB = "webhook.deliver"


def queue(
    session: AsyncSession,
    *,
    client_id: uuid.UUID,
    mode: str,
    event: str,
    subject_reference: str,
    url: str,
    payload: dict[str, Any],
    now: datetime,
) -> WebhookDelivery:
    """A delivery of ``payload`` to ``url``, sent by the worker after this transaction commits."""
    delivery = WebhookDelivery(
        id=new_id(), client_id=client_id, mode=mode, event=event, subject_reference=subject_reference,
        url=url, payload=payload, status=DeliveryStatus.PENDING, attempts=0, created_at=now,
    )  # fmt: skip
    session.add(delivery)
    enqueue(session, DELIVER_JOB, {"delivery_id": str(delivery.id)}, now=now)
    return delivery


async def deliveries_for(
    session: AsyncSession, client_id: uuid.UUID, mode: str, subject_reference: str
) -> list[tuple[WebhookDelivery, list[WebhookAttempt]]]:
    """A reference's deliveries (oldest first) with their attempts: what a merchant can inspect."""
    deliveries = (
        await session.scalars(
            select(WebhookDelivery)
            .where(
                WebhookDelivery.client_id == client_id,
                WebhookDelivery.mode == mode,
                WebhookDelivery.subject_reference == subject_reference,
            )
            .order_by(WebhookDelivery.created_at, WebhookDelivery.id)
        )
    ).all()
    found = []
    for delivery in deliveries:
        attempts = (
            await session.scalars(
                select(WebhookAttempt)
                .where(WebhookAttempt.delivery_id == delivery.id)
                .order_by(WebhookAttempt.number)
            )
        ).all()
        found.append((delivery, list(attempts)))
    return found
