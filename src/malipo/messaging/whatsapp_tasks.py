"""Outbox job ``whatsapp.send``: one text through the Cloud API (or its simulator).

Sent -> ``sent`` with the ``wamid``; refused for good -> ``failed`` with Meta's code and
message; a transient refusal (throttling, Meta's outages, the network) is retried with
backoff, and after the last attempt the message is ``failed`` with the reason. The
Cloud API has no idempotency key, so a retry after a lost reply may deliver twice:
delivery is at least once.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import update

from malipo.core.logging import get_logger
from malipo.messaging.connectors import whatsapp_backend, whatsapp_client
from malipo.messaging.models import WhatsAppMessage, WhatsAppSession, WhatsAppStatus
from malipo.providers.whatsapp_cloud.client import WhatsAppError
from malipo.worker.registry import JobContext, PermanentJobError, job_handler

log = get_logger("malipo.messaging.whatsapp")

SEND_JOB = "whatsapp.send"


class WhatsAppRetryLater(Exception):
    """A transient refusal: the worker schedules the next attempt."""


@job_handler(SEND_JOB, max_attempts=6, base_delay=5.0, max_delay=600.0)
async def send_whatsapp(ctx: JobContext, payload: dict[str, Any]) -> None:
    try:
        message_id = uuid.UUID(str(payload["id"]))
    except (KeyError, ValueError) as exc:
        raise PermanentJobError(f"whatsapp.send payload has no valid id: {exc}") from exc
    now = ctx.clock.now()
    async with ctx.db.transaction() as session:
        message = await session.get(WhatsAppMessage, message_id)
        if message is None:
            raise PermanentJobError(f"WhatsApp message {message_id} does not exist")
        if message.status != WhatsAppStatus.QUEUED:
            return  # sent already (the job ran twice)
        found = await session.get(WhatsAppSession, message.session_id)
        assert found is not None  # a foreign key
        backend = whatsapp_backend(ctx.settings, message.mode, found.backend)
        to, body = message.phone_number, message.body
        phone_number_id, token = found.phone_number_id, found.access_token
        message.attempts += 1
        message.backend = backend
        message.updated_at = now
    client = whatsapp_client(
        ctx.settings, backend, phone_number_id=phone_number_id, access_token=token, http=ctx.http
    )
    try:
        sent = await client.send_text(to, body)
    except WhatsAppError as exc:
        reason = f"{exc.code} {exc.message}" if exc.code else exc.message
        final = not exc.retryable or ctx.attempt >= ctx.max_attempts
        values: dict[str, Any] = {"error": reason[:500], "updated_at": ctx.clock.now()}
        if final:
            values["status"] = WhatsAppStatus.FAILED
        async with ctx.db.transaction() as session:
            await session.execute(
                update(WhatsAppMessage)
                .where(WhatsAppMessage.id == message_id, WhatsAppMessage.status == WhatsAppStatus.QUEUED)
                .values(**values)
                .execution_options(synchronize_session=False)
            )
        if not exc.retryable:
            raise PermanentJobError(reason) from None
        raise WhatsAppRetryLater(reason) from None
    async with ctx.db.transaction() as session:
        await session.execute(
            update(WhatsAppMessage)
            .where(WhatsAppMessage.id == message_id, WhatsAppMessage.status == WhatsAppStatus.QUEUED)
            .values(
                status=WhatsAppStatus.SENT,
                gateway_message_id=sent.message_id,
                error=None,
                sent_at=ctx.clock.now(),
                updated_at=ctx.clock.now(),
            )
            .execution_options(synchronize_session=False)
        )
    log.info("whatsapp.sent", message_id=str(message_id), attempt=ctx.attempt, backend=backend)
