"""Outbox job ``sms.send``: one Africa's Talking request for a group of queued messages.

The payload names messages (``{"ids": [...]}``): one for a single send, a chunk
of a bulk. A run sends only those still ``queued``, so running a job twice never
sends a message the provider already took (the narrow window between the
provider's reply and recording it aside: delivery is at least once).

Per recipient: accepted -> ``sent`` with the gateway id; refused for good ->
``failed`` and refunded; refused for a transient reason (AT's 500/501), or the
whole request failed transiently -> stays ``queued`` and the job is retried with
backoff; after the last attempt those become ``failed`` and are refunded.
Every attempt is recorded by the worker and counted on each message.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from malipo.core.logging import get_logger
from malipo.messaging import sms as sms_service
from malipo.messaging.models import SmsMessage, SmsStatus
from malipo.providers.africastalking.client import RecipientResult, SmsProviderError
from malipo.providers.registry import sms_client
from malipo.worker.registry import JobContext, PermanentJobError, job_handler

log = get_logger("malipo.messaging.sms")

SEND_JOB = "sms.send"


_TABLE = SmsMessage.__table__
_MARK_SENT = (
    update(_TABLE)
    .where(_TABLE.c.id == bindparam("b_id"), _TABLE.c.status == SmsStatus.QUEUED.value)
    .values(
        status=SmsStatus.SENT.value,
        gateway_message_id=bindparam("b_gateway_id"),
        gateway_status=bindparam("b_gateway_status"),
        failure_reason=None,
    )
)


class SmsRetryLater(Exception):
    """Some recipients are to be tried again: the worker schedules the next attempt."""


@job_handler(SEND_JOB, max_attempts=6, base_delay=5.0, max_delay=600.0)
async def send_sms(ctx: JobContext, payload: dict[str, Any]) -> None:
    try:
        ids = [uuid.UUID(str(value)) for value in payload["ids"]]
    except (KeyError, TypeError, ValueError) as exc:
        raise PermanentJobError(f"sms.send payload has no valid ids: {exc}") from exc
    now = ctx.clock.now()
    async with ctx.db.transaction() as session:
        rows = (
            await session.execute(
                select(
                    SmsMessage.id,
                    SmsMessage.mode,
                    SmsMessage.phone_number,
                    SmsMessage.message,
                    SmsMessage.sender_id,
                ).where(SmsMessage.id.in_(ids), SmsMessage.status == SmsStatus.QUEUED)
            )
        ).all()
        if not rows:
            return
        await session.execute(
            update(SmsMessage)
            .where(SmsMessage.id.in_([row.id for row in rows]))
            .values(attempts=SmsMessage.attempts + 1, updated_at=now)
            .execution_options(synchronize_session=False)
        )
    # One provider request per (mode, text, sender): a job is one batch's chunk, so normally one.
    groups: dict[tuple[str, str, str | None], list[Any]] = defaultdict(list)
    for row in rows:
        groups[(row.mode, row.message, row.sender_id)].append(row)
    retry: list[str] = []
    refused: list[str] = []
    for (mode, text, sender_id), members in groups.items():
        try:
            retry += await _send_group(ctx, mode, text, sender_id, members)
        except SmsProviderError as exc:  # refused as a whole, for good: recorded, refunded
            refused.append(str(exc))
    if retry:
        raise SmsRetryLater(f"{len(retry)} recipient(s) to try again: {retry[0]}")
    if refused:
        raise PermanentJobError(refused[0])


async def _send_group(
    ctx: JobContext, mode: str, text: str, sender_id: str | None, members: list[Any]
) -> list[str]:
    """Send one text to ``members``; record the outcomes; return the reasons of those to retry."""
    by_number = {row.phone_number: row.id for row in members}
    last_attempt = ctx.attempt >= ctx.max_attempts
    client = sms_client(ctx.settings, mode, ctx.http)
    try:
        results = await client.send(list(by_number), text, sender_id)
    except SmsProviderError as exc:
        reason = str(exc)[:500]
        async with ctx.db.transaction() as session:
            if exc.retryable and not last_attempt:
                await _note(session, list(by_number.values()), reason, ctx)
            else:
                await _fail(session, list(by_number.values()), reason, None, ctx)
        if exc.retryable and not last_attempt:
            return [reason] * len(by_number)
        raise
    seen: dict[str, RecipientResult] = {result.number: result for result in results}
    now = ctx.clock.now()
    retry: list[str] = []
    accepted: list[dict[str, Any]] = []
    async with ctx.db.transaction() as session:
        for number, sms_id in by_number.items():
            result = seen.get(number)
            if result is None:
                reason = "the provider's reply did not mention this number"
                if last_attempt:
                    await _fail(session, [sms_id], reason, None, ctx)
                else:
                    await _note(session, [sms_id], reason, ctx)
                    retry.append(reason)
            elif result.accepted:
                accepted.append(
                    {
                        "b_id": sms_id,
                        "b_gateway_id": result.message_id,
                        "b_gateway_status": result.status[:40],
                    }
                )
            elif result.retryable and not last_attempt:
                await _note(session, [sms_id], f"{result.status_code} {result.status}", ctx, result.status)
                retry.append(f"{number}: {result.status_code} {result.status}")
            else:
                await _fail(session, [sms_id], f"{result.status_code} {result.status}", result.status, ctx)
        if accepted:
            # One executemany for the whole chunk: a round trip per row would queue behind
            # everything else the event loop is doing (a bulk's delivery reports arriving).
            await session.execute(_MARK_SENT.values(sent_at=now, updated_at=now), accepted)
    return retry


async def _note(
    session: AsyncSession,
    ids: list[uuid.UUID],
    reason: str,
    ctx: JobContext,
    gateway_status: str | None = None,
) -> None:
    values: dict[str, Any] = {"failure_reason": reason[:500], "updated_at": ctx.clock.now()}
    if gateway_status is not None:
        values["gateway_status"] = gateway_status[:40]
    await session.execute(
        update(SmsMessage)
        .where(SmsMessage.id.in_(ids), SmsMessage.status == SmsStatus.QUEUED)
        .values(**values)
        .execution_options(synchronize_session=False)
    )


async def _fail(
    session: AsyncSession, ids: list[uuid.UUID], reason: str, gateway_status: str | None, ctx: JobContext
) -> None:
    """``failed`` (from ``queued`` only) and refunded, in one transaction."""
    now = ctx.clock.now()
    values: dict[str, Any] = {
        "status": SmsStatus.FAILED,
        "failure_reason": reason[:500],
        "refunded": True,
        "updated_at": now,
    }
    if gateway_status is not None:
        values["gateway_status"] = gateway_status[:40]
    failed = (
        await session.execute(
            update(SmsMessage)
            .where(SmsMessage.id.in_(ids), SmsMessage.status == SmsStatus.QUEUED)
            .values(**values)
            .returning(
                SmsMessage.id, SmsMessage.client_id, SmsMessage.mode, SmsMessage.cost, SmsMessage.currency
            )
            .execution_options(synchronize_session=False)
        )
    ).all()
    if failed:
        await sms_service.refund_messages(session, list(failed), now=now, reason=reason)
        log.warning("sms.failed", count=len(failed), reason=reason, attempt=ctx.attempt)
