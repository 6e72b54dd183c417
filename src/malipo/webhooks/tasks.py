"""Outbox job: POST a merchant callback, record the attempt, retry with backoff until it lands."""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import insert, select, update

from malipo.core.ids import new_id
from malipo.core.logging import get_logger
from malipo.webhooks.models import DeliveryStatus, WebhookAttempt, WebhookDelivery
from malipo.webhooks.service import DELIVER_JOB
from malipo.worker.registry import BatchContext, BatchItem, PermanentJobError, batch_job_handler, enqueue_many
from malipo.worker.runner import backoff_delay

log = get_logger("malipo.webhooks")

TIMEOUT_SECONDS = 10.0


_DELIVERIES = WebhookDelivery.__table__


@dataclass(slots=True)
class _Attempt:
    item: BatchItem
    delivery_id: uuid.UUID
    number: int
    started: datetime
    duration_ms: int = 0
    status_code: int | None = None
    error: str | None = None


# The job's own retries only cover crashes (the database, a dead worker); a refused attempt
# schedules the next one itself, with the settings' backoff and limit.
@batch_job_handler(DELIVER_JOB, max_attempts=5, base_delay=2.0, max_delay=60.0)
async def deliver(ctx: BatchContext, items: list[BatchItem]) -> dict[uuid.UUID, BaseException]:
    """POST each delivery's JSON; 2xx delivers it, anything else is an attempt to retry.

    The deliveries are read in one query and posted together, outside any transaction; the
    attempts and the deliveries' states are written after, in one transaction, with each next
    attempt's job (after ``webhook_retry_base_seconds``, doubling, jittered, capped at
    ``webhook_retry_max_seconds``) until ``webhook_max_attempts``: the last refused attempt
    marks it failed. A job whose attempt is already recorded (it ran again after its worker
    died) does nothing.
    """
    failed: dict[uuid.UUID, BaseException] = {}
    wanted: dict[uuid.UUID, tuple[BatchItem, int]] = {}
    for item in items:
        try:
            wanted[uuid.UUID(str(item.payload["delivery_id"]))] = (item, int(item.payload.get("attempt", 1)))
        except (KeyError, ValueError) as exc:
            failed[item.job_id] = PermanentJobError(f"{DELIVER_JOB} payload has no valid delivery_id: {exc}")
    if not wanted:
        return failed
    async with ctx.db.transaction() as session:
        rows = {
            row.id: row
            for row in await session.execute(
                select(_DELIVERIES.c.id, _DELIVERIES.c.status, _DELIVERIES.c.attempts, _DELIVERIES.c.url,
                       _DELIVERIES.c.payload).where(_DELIVERIES.c.id.in_(list(wanted)))
            )
        }  # fmt: skip
    due: list[tuple[_Attempt, str, Any]] = []
    for delivery_id, (item, expected) in wanted.items():
        row = rows.get(delivery_id)
        if row is None:
            failed[item.job_id] = PermanentJobError(f"webhook delivery {delivery_id} does not exist")
        elif row.status == DeliveryStatus.PENDING and row.attempts == expected - 1:
            due.append((_Attempt(item, delivery_id, row.attempts + 1, ctx.clock.now()), row.url, row.payload))
    if not due:
        return failed
    await asyncio.gather(*(_post(ctx, attempt, url, body) for attempt, url, body in due))
    await _record(ctx, [attempt for attempt, _url, _body in due])
    return failed


async def _post(ctx: BatchContext, attempt: _Attempt, url: str, body: Any) -> None:
    began = time.perf_counter()
    try:
        reply = await ctx.http.post(url, json=body, timeout=TIMEOUT_SECONDS)
        attempt.status_code = reply.status_code
        if not reply.is_success:
            attempt.error = f"HTTP {reply.status_code}: {reply.text[:200]}"
    except httpx.HTTPError as exc:
        attempt.error = f"{type(exc).__name__}: {exc}"[:500]
    attempt.duration_ms = int((time.perf_counter() - began) * 1000)


async def _record(ctx: BatchContext, attempts: list[_Attempt]) -> None:
    now = ctx.clock.now()
    async with ctx.db.transaction() as session:
        retries: list[dict[str, Any]] = []
        delays: list[timedelta] = []
        recorded: list[dict[str, Any]] = []
        for attempt in attempts:
            delivered = attempt.error is None
            last = not delivered and attempt.number >= ctx.settings.webhook_max_attempts
            values: dict[str, Any] = {
                "attempts": attempt.number,
                "last_status_code": attempt.status_code,
                "last_error": attempt.error,
            }
            if delivered:
                values |= {"status": DeliveryStatus.DELIVERED, "delivered_at": now}
            elif last:
                values["status"] = DeliveryStatus.FAILED
            moved = await session.execute(
                update(_DELIVERIES)
                .where(_DELIVERIES.c.id == attempt.delivery_id, _DELIVERIES.c.attempts == attempt.number - 1)
                .values(**values)
            )
            if moved.rowcount != 1:  # type: ignore[attr-defined]
                continue  # another run of this job recorded this attempt first
            recorded.append(
                {
                    "id": new_id(), "delivery_id": attempt.delivery_id, "number": attempt.number,
                    "started_at": attempt.started, "duration_ms": attempt.duration_ms,
                    "status_code": attempt.status_code, "error": attempt.error,
                }
            )  # fmt: skip
            if not delivered and not last:
                retries.append({"delivery_id": str(attempt.delivery_id), "attempt": attempt.number + 1})
                delays.append(
                    timedelta(
                        seconds=backoff_delay(
                            attempt.number,
                            ctx.settings.webhook_retry_base_seconds,
                            ctx.settings.webhook_retry_max_seconds,
                        )
                    )
                )
            log.info(
                "webhook.attempt",
                delivery_id=str(attempt.delivery_id),
                number=attempt.number,
                status=attempt.status_code,
                delivered=delivered,
                given_up=last,
            )
        if recorded:
            await session.execute(insert(WebhookAttempt.__table__), recorded)
        await enqueue_many(session, DELIVER_JOB, retries, now=now, delays=delays)
