"""Every query on the callbacks' tables: deliveries (one per callback) and their attempts.

The worker's statements are guarded updates: each names the state it expects, and answers
whether it moved the row, so a job run twice never records an attempt twice.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Row, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from malipo.webhooks.models import AttemptOutcome, DeliveryStatus, WebhookAttempt, WebhookDelivery

_DELIVERIES = WebhookDelivery.__table__
_ATTEMPTS = WebhookAttempt.__table__


def add_delivery(session: AsyncSession, delivery: WebhookDelivery) -> None:
    session.add(delivery)


async def deliveries_for(
    session: AsyncSession, client_id: uuid.UUID, mode: str, subject_reference: str
) -> list[tuple[WebhookDelivery, list[WebhookAttempt]]]:
    """A reference's deliveries of this client and mode (oldest first), each with its attempts."""
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


async def deliveries_to_send(
    session: AsyncSession, delivery_ids: list[uuid.UUID]
) -> dict[uuid.UUID, Row[Any]]:
    """Each delivery's id, status, attempts, url and payload, by id (one gone is absent)."""
    return {
        row.id: row
        for row in await session.execute(
            select(_DELIVERIES.c.id, _DELIVERIES.c.status, _DELIVERIES.c.attempts, _DELIVERIES.c.url,
                   _DELIVERIES.c.payload).where(_DELIVERIES.c.id.in_(delivery_ids))
        )
    }  # fmt: skip


async def mark_lost(session: AsyncSession, delivery_id: uuid.UUID, number: int) -> bool:
    """Attempt ``number``, if still in flight, becomes unknown (its worker died mid-call)."""
    lost = await session.execute(
        update(_ATTEMPTS)
        .where(_ATTEMPTS.c.delivery_id == delivery_id, _ATTEMPTS.c.number == number,
               _ATTEMPTS.c.outcome == AttemptOutcome.IN_FLIGHT)
        .values(outcome=AttemptOutcome.UNKNOWN)
    )  # fmt: skip
    return bool(lost.rowcount == 1)  # type: ignore[attr-defined]


async def claim_attempt(session: AsyncSession, delivery_id: uuid.UUID, attempts: int) -> bool:
    """Count one more attempt of a pending delivery that has had ``attempts``; False if it moved on."""
    claimed = await session.execute(
        update(_DELIVERIES)
        .where(_DELIVERIES.c.id == delivery_id, _DELIVERIES.c.attempts == attempts,
               _DELIVERIES.c.status == DeliveryStatus.PENDING)
        .values(attempts=attempts + 1)
    )  # fmt: skip
    return bool(claimed.rowcount == 1)  # type: ignore[attr-defined]


async def insert_attempts(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    await session.execute(insert(_ATTEMPTS), rows)


async def answer_attempt(
    session: AsyncSession,
    attempt_id: uuid.UUID,
    *,
    delivered: bool,
    duration_ms: int,
    status_code: int | None,
    error: str | None,
) -> None:
    await session.execute(
        update(_ATTEMPTS)
        .where(_ATTEMPTS.c.id == attempt_id)
        .values(
            outcome=AttemptOutcome.DELIVERED if delivered else AttemptOutcome.REFUSED,
            duration_ms=duration_ms,
            status_code=status_code,
            error=error,
        )
    )


async def answer_delivery(
    session: AsyncSession,
    delivery_id: uuid.UUID,
    *,
    number: int,
    delivered: bool,
    failed: bool,
    status_code: int | None,
    error: str | None,
    now: datetime,
) -> bool:
    """Record attempt ``number``'s answer on its delivery: a delivered answer delivers it whatever
    came since; a refused one counts only while the delivery is pending at that attempt (and
    ``failed`` ends it). False when the delivery was not moved."""
    values: dict[str, Any] = {"last_status_code": status_code, "last_error": error}
    where = [_DELIVERIES.c.id == delivery_id]
    if delivered:
        values |= {"status": DeliveryStatus.DELIVERED, "delivered_at": now}
        where.append(_DELIVERIES.c.status != DeliveryStatus.DELIVERED)
    else:
        where += [_DELIVERIES.c.status == DeliveryStatus.PENDING, _DELIVERIES.c.attempts == number]
        if failed:
            values["status"] = DeliveryStatus.FAILED
    moved = await session.execute(update(_DELIVERIES).where(*where).values(**values))
    return bool(moved.rowcount == 1)  # type: ignore[attr-defined]
