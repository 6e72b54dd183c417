"""Outbox job: POST a merchant callback, record the attempt, retry with backoff until it lands.

Delivery is at-least-once: a worker killed after its POST reached the merchant and before it
recorded the answer leaves an attempt whose outcome nobody knows, and the callback is posted
again. Every attempt of a delivery carries the same callback id (the ``X-Malipo-Callback-Id``
header and the body's ``callback_id``) for the merchant to de-duplicate on; the attempt is
recorded ``in_flight`` before the POST, so one whose answer was lost shows as ``unknown``.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx

from malipo.core.ids import new_id
from malipo.core.logging import get_logger
from malipo.webhooks import repository
from malipo.webhooks.models import AttemptOutcome, DeliveryStatus
from malipo.webhooks.service import DELIVER_JOB, render_bodies
from malipo.worker.registry import BatchContext, BatchItem, PermanentJobError, batch_job_handler, enqueue_many
from malipo.worker.runner import GaveUp, backoff_delay

log = get_logger("malipo.webhooks")

TIMEOUT_SECONDS = 10.0
# The header and the top-level body key holding the delivery's id (Pay Hero clients ignore it).
CALLBACK_ID_HEADER = "X-Malipo-Callback-Id"
CALLBACK_ID_FIELD = "callback_id"


@dataclass(slots=True)
class _Attempt:
    item: BatchItem
    id: uuid.UUID
    delivery_id: uuid.UUID
    number: int
    started: datetime
    duration_ms: int = 0
    status_code: int | None = None
    error: str | None = None


def callback_body(delivery_id: uuid.UUID, payload: Any) -> Any:
    """What is POSTed: the stored payload with the callback id beside its own keys."""
    if isinstance(payload, dict):
        return {**payload, CALLBACK_ID_FIELD: str(delivery_id)}
    return payload


# The job's own retries only cover crashes (the database, a dead worker); a refused attempt
# schedules the next one itself, with the settings' backoff and limit.
@batch_job_handler(DELIVER_JOB, max_attempts=5, base_delay=2.0, max_delay=60.0)
async def deliver(ctx: BatchContext, items: list[BatchItem]) -> dict[uuid.UUID, BaseException]:
    """POST each delivery's JSON; 2xx delivers it, anything else is an attempt to retry.

    The deliveries are read and their attempts recorded ``in_flight`` in one transaction, then
    posted together outside any transaction; the attempts' answers and the deliveries' states are
    written after, in one transaction, with each next attempt's job (after
    ``webhook_retry_base_seconds``, doubling, jittered, capped at ``webhook_retry_max_seconds``)
    until ``webhook_max_attempts``: the last refused attempt marks it failed. A job that finds its
    attempt still in flight (it runs again because its worker died mid-call) marks that attempt
    ``unknown`` and posts the callback again as the next attempt, with the same callback id.
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
    due: list[tuple[_Attempt, str, Any]] = []
    now = ctx.clock.now()
    async with ctx.db.transaction() as session:
        rows = await repository.deliveries_to_send(session, list(wanted))
        # Rendered now, from the subjects' current rows: every attempt posts the same final state.
        bodies = await render_bodies(
            session, {d: row.payload for d, row in rows.items() if row.status == DeliveryStatus.PENDING}
        )
        started: list[dict[str, Any]] = []
        for delivery_id, (item, expected) in wanted.items():
            row = rows.get(delivery_id)
            if row is None:
                failed[item.job_id] = PermanentJobError(f"webhook delivery {delivery_id} does not exist")
                continue
            if row.status != DeliveryStatus.PENDING:
                continue
            body = bodies[delivery_id]
            if isinstance(body, BaseException):
                failed[item.job_id] = PermanentJobError(str(body))
                continue
            if row.attempts == expected:
                # This job's attempt was recorded and never answered: its worker died mid-call.
                if not await repository.mark_lost(session, delivery_id, expected):
                    continue  # answered already: the job ran again for another reason
                log.warning("webhook.attempt_unknown", delivery_id=str(delivery_id), number=expected)
            elif row.attempts != expected - 1:
                continue  # another run of this job moved on
            number = row.attempts + 1
            if not await repository.claim_attempt(session, delivery_id, row.attempts):
                continue  # another run of this job claimed it first
            attempt = _Attempt(item, new_id(), delivery_id, number, now)
            started.append(
                {"id": attempt.id, "delivery_id": delivery_id, "number": number,
                 "outcome": AttemptOutcome.IN_FLIGHT, "started_at": now}
            )  # fmt: skip
            due.append((attempt, row.url, callback_body(delivery_id, body)))
        if started:
            await repository.insert_attempts(session, started)
    if not due:
        return failed
    await asyncio.gather(*(_post(ctx, attempt, url, body) for attempt, url, body in due))
    for attempt in await _record(ctx, [attempt for attempt, _url, _body in due]):
        failed[attempt.item.job_id] = GaveUp(
            f"callback {attempt.delivery_id} given up after {attempt.number} attempts: {attempt.error}"
        )
    return failed


async def _post(ctx: BatchContext, attempt: _Attempt, url: str, body: Any) -> None:
    began = time.perf_counter()
    try:
        reply = await ctx.http.post(
            url,
            json=body,
            headers={CALLBACK_ID_HEADER: str(attempt.delivery_id)},
            timeout=TIMEOUT_SECONDS,
        )
        attempt.status_code = reply.status_code
        if not reply.is_success:
            attempt.error = f"HTTP {reply.status_code}: {reply.text[:200]}"
    except httpx.HTTPError as exc:
        attempt.error = f"{type(exc).__name__}: {exc}"[:500]
    attempt.duration_ms = int((time.perf_counter() - began) * 1000)


async def _record(ctx: BatchContext, attempts: list[_Attempt]) -> list[_Attempt]:
    """Each attempt's answer, and its delivery's state when it is still the delivery's latest
    attempt (a delivered answer delivers it whatever came since). Returns the attempts whose
    delivery this gave up on."""
    now = ctx.clock.now()
    given_up: list[_Attempt] = []
    async with ctx.db.transaction() as session:
        retries: list[dict[str, Any]] = []
        delays: list[timedelta] = []
        for attempt in attempts:
            delivered = attempt.error is None
            last = not delivered and attempt.number >= ctx.settings.webhook_max_attempts
            await repository.answer_attempt(
                session, attempt.id, delivered=delivered, duration_ms=attempt.duration_ms,
                status_code=attempt.status_code, error=attempt.error,
            )  # fmt: skip
            moved = await repository.answer_delivery(
                session, attempt.delivery_id, number=attempt.number, delivered=delivered, failed=last,
                status_code=attempt.status_code, error=attempt.error, now=now,
            )  # fmt: skip
            if moved and not delivered and not last:
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
            gave_up = last and moved
            (log.warning if gave_up else log.info)(
                "webhook.given_up" if gave_up else "webhook.attempt",
                delivery_id=str(attempt.delivery_id),
                number=attempt.number,
                status=attempt.status_code,
                delivered=delivered,
                given_up=gave_up,
                **({"error": attempt.error} if gave_up else {}),
            )
            if gave_up:
                given_up.append(attempt)
        await enqueue_many(session, DELIVER_JOB, retries, now=now, delays=delays)
    return given_up
