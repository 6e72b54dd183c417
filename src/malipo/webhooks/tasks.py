"""Outbox job: POST a merchant callback, record the attempt, retry with backoff until it lands."""

from __future__ import annotations

import time
import uuid
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import update

from malipo.core.ids import new_id
from malipo.core.logging import get_logger
from malipo.webhooks.models import DeliveryStatus, WebhookAttempt, WebhookDelivery
from malipo.webhooks.service import DELIVER_JOB
from malipo.worker.registry import JobContext, PermanentJobError, enqueue, job_handler
from malipo.worker.runner import backoff_delay

log = get_logger("malipo.webhooks")

TIMEOUT_SECONDS = 10.0


# The job's own retries only cover crashes (the database, a dead worker); a refused attempt
# schedules the next one itself, with the settings' backoff and limit.
@job_handler(DELIVER_JOB, max_attempts=5, base_delay=2.0, max_delay=60.0)
async def deliver(ctx: JobContext, payload: dict[str, Any]) -> None:
    """POST the delivery's JSON; 2xx delivers it, anything else is an attempt to retry.

    Runs outside any transaction while the request is in flight; the attempt and the
    delivery's state are written after, with the next attempt's job (after
    ``webhook_retry_base_seconds``, doubling, jittered, capped at ``webhook_retry_max_seconds``)
    until ``webhook_max_attempts``: the last refused attempt marks it failed. A job whose
    attempt is already recorded (it ran again after its worker died) does nothing.
    """
    try:
        delivery_id = uuid.UUID(str(payload["delivery_id"]))
        expected = int(payload.get("attempt", 1))
    except (KeyError, ValueError) as exc:
        raise PermanentJobError(f"{DELIVER_JOB} payload has no valid delivery_id: {exc}") from exc
    async with ctx.db.transaction() as session:
        delivery = await session.get(WebhookDelivery, delivery_id)
        if delivery is None:
            raise PermanentJobError(f"webhook delivery {delivery_id} does not exist")
        if delivery.status != DeliveryStatus.PENDING or delivery.attempts != expected - 1:
            return
        url, body, number = delivery.url, delivery.payload, delivery.attempts + 1

    started = ctx.clock.now()
    began = time.perf_counter()
    status_code: int | None = None
    error: str | None = None
    try:
        reply = await ctx.http.post(url, json=body, timeout=TIMEOUT_SECONDS)
        status_code = reply.status_code
        if not reply.is_success:
            error = f"HTTP {reply.status_code}: {reply.text[:200]}"
    except httpx.HTTPError as exc:
        error = f"{type(exc).__name__}: {exc}"[:500]
    duration_ms = int((time.perf_counter() - began) * 1000)
    delivered = error is None
    last = not delivered and number >= ctx.settings.webhook_max_attempts

    async with ctx.db.transaction() as session:
        values: dict[str, Any] = {
            "attempts": number, "last_status_code": status_code, "last_error": error,
        }  # fmt: skip
        if delivered:
            values |= {"status": DeliveryStatus.DELIVERED, "delivered_at": ctx.clock.now()}
        elif last:
            values["status"] = DeliveryStatus.FAILED
        recorded = await session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.id == delivery_id, WebhookDelivery.attempts == number - 1)
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        if recorded.rowcount != 1:  # type: ignore[attr-defined]
            return  # another run of this job recorded this attempt first
        session.add(
            WebhookAttempt(
                id=new_id(), delivery_id=delivery_id, number=number, started_at=started,
                duration_ms=duration_ms, status_code=status_code, error=error,
            )
        )  # fmt: skip
        if not delivered and not last:
            delay = backoff_delay(
                number, ctx.settings.webhook_retry_base_seconds, ctx.settings.webhook_retry_max_seconds
            )
            enqueue(
                session, DELIVER_JOB, {"delivery_id": str(delivery_id), "attempt": number + 1},
                now=ctx.clock.now(), delay=timedelta(seconds=delay),
            )  # fmt: skip
    log.info(
        "webhook.attempt",
        delivery_id=str(delivery_id),
        number=number,
        status=status_code,
        delivered=delivered,
        given_up=last,
    )
