"""Outbox job ``whatsapp.send``: one message (a text, an image or a document) through the Cloud API
(or its simulator).

Sent -> ``sent`` with the ``wamid``; refused for good -> ``failed`` with Meta's code and
message; a transient refusal (throttling, Meta's outages, the network) is retried with
backoff, and after the last attempt the message is ``failed`` with the reason. The
Cloud API has no idempotency key, so a retry after a lost reply may deliver twice:
delivery is at least once.
"""

from __future__ import annotations

import unicodedata
import uuid
from enum import StrEnum
from typing import Any
from urllib.parse import unquote, urlsplit

from sqlalchemy import update

from malipo.core.logging import get_logger
from malipo.messaging.models import WhatsAppMessage, WhatsAppSession, WhatsAppStatus
from malipo.providers.registry import whatsapp_backend, whatsapp_client
from malipo.providers.whatsapp_cloud.client import SentMessage, WhatsAppCloudClient, WhatsAppError
from malipo.worker.registry import JobContext, PermanentJobError, job_handler

log = get_logger("malipo.messaging.whatsapp")

SEND_JOB = "whatsapp.send"
MAX_FILENAME = 240


class WhatsAppMessageType(StrEnum):
    """What a message carries; the values are the Cloud API's ``type``."""

    TEXT = "text"
    IMAGE = "image"
    DOCUMENT = "document"


class WhatsAppRetryLater(Exception):
    """A transient refusal: the worker schedules the next attempt."""


def document_filename(url: str) -> str | None:
    """The name a document is shown under: its URL's last path segment, percent-decoded
    (``…/invoices/INV%2D9.pdf?sig=…`` -> ``INV-9.pdf``); None when the path ends in ``/``."""
    name = unquote(urlsplit(url).path.rsplit("/", 1)[-1])
    # A name is one line of printable text: control characters (a decoded %0A …) are dropped.
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C").strip()
    return name[:MAX_FILENAME] or None


async def _send(
    client: WhatsAppCloudClient, kind: str, to: str, body: str, media_url: str | None
) -> SentMessage:
    if kind == WhatsAppMessageType.IMAGE:
        assert media_url is not None  # checked before the call
        return await client.send_image(to, media_url, caption=body or None)
    if kind == WhatsAppMessageType.DOCUMENT:
        assert media_url is not None
        return await client.send_document(
            to, media_url, caption=body or None, filename=document_filename(media_url)
        )
    return await client.send_text(to, body)


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
        kind, media_url = message.message_type or WhatsAppMessageType.TEXT, message.media_url
        phone_number_id, token = found.phone_number_id, found.access_token
        message.attempts += 1
        message.backend = backend
        message.updated_at = now
        unsendable = None
        if kind != WhatsAppMessageType.TEXT and not media_url:
            # The service never queues one; a row written otherwise would be retried for nothing.
            unsendable = f"{kind} message without a media URL"
            message.status = WhatsAppStatus.FAILED
            message.error = unsendable
    if unsendable is not None:
        raise PermanentJobError(unsendable)
    client = whatsapp_client(
        ctx.settings, backend, phone_number_id=phone_number_id, access_token=token, http=ctx.http
    )
    try:
        sent = await _send(client, kind, to, body, media_url)
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
    log.info("whatsapp.sent", message_id=str(message_id), attempt=ctx.attempt, backend=backend, type=kind)
