"""Every query on the WhatsApp tables (``whatsapp_sessions``, ``whatsapp_batches``, ``whatsapp_messages``).

Reads for a caller are filtered by its client (sessions are a client's, in both modes) and, for
batches and messages, its mode. The worker's and the status webhooks' queries go by message id,
gateway id or the webhook's own session: those come from malipo's jobs or the provider.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from malipo.core.crypto import sha256_hex
from malipo.db.batches import batch_page
from malipo.whatsapp.models import WhatsAppBatch, WhatsAppMessage, WhatsAppSession, WhatsAppStatus

# -- sessions -------------------------------------------------------------------------------------


async def session_named(
    session: AsyncSession, client_id: uuid.UUID | None, name: str
) -> WhatsAppSession | None:
    return await session.scalar(
        select(WhatsAppSession).where(WhatsAppSession.client_id == client_id, WhatsAppSession.name == name)
    )


async def sessions_of(session: AsyncSession, client_id: uuid.UUID | None) -> list[WhatsAppSession]:
    found = await session.scalars(
        select(WhatsAppSession).where(WhatsAppSession.client_id == client_id).order_by(WhatsAppSession.name)
    )
    return list(found.all())


async def session_by_id(session: AsyncSession, session_id: uuid.UUID) -> WhatsAppSession | None:
    """By id alone: for a webhook token already checked against the id, and for the worker."""
    return await session.get(WhatsAppSession, session_id)


async def session_by_legacy_token(session: AsyncSession, token: str) -> WhatsAppSession | None:
    return await session.scalar(
        select(WhatsAppSession).where(WhatsAppSession.legacy_webhook_token_hash == sha256_hex(token))
    )


# -- batches and messages -------------------------------------------------------------------------


async def insert_messages(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    """A bulk's messages in one multi-row INSERT."""
    await session.execute(insert(WhatsAppMessage.__table__), rows)


async def batch_with_session_name(
    session: AsyncSession, client_id: uuid.UUID | None, mode: str, batch_id: uuid.UUID
) -> tuple[WhatsAppBatch, str] | None:
    row = (
        await session.execute(
            select(WhatsAppBatch, WhatsAppSession.name)
            .join(WhatsAppSession, WhatsAppSession.id == WhatsAppBatch.session_id)
            .where(
                WhatsAppBatch.id == batch_id,
                WhatsAppBatch.client_id == client_id,
                WhatsAppBatch.mode == mode,
            )
        )
    ).first()
    return None if row is None else (row[0], row[1])


async def batch_messages(
    session: AsyncSession, batch: WhatsAppBatch, *, page: int, page_size: int
) -> tuple[dict[str, int], list[WhatsAppMessage]]:
    """(messages per status, one page of them) of a batch already found for its client and mode."""
    return await batch_page(session, WhatsAppMessage, batch.id, page=page, page_size=page_size)


async def batch_content(session: AsyncSession, batch: WhatsAppBatch) -> tuple[str | None, str | None]:
    """(message_type, media_url) of the batch's messages (all alike), or (None, None)."""
    content = (
        await session.execute(
            select(WhatsAppMessage.message_type, WhatsAppMessage.media_url)
            .where(WhatsAppMessage.batch_id == batch.id)
            .limit(1)
        )
    ).first()
    return (content[0], content[1]) if content is not None else (None, None)


async def message_for_status(
    session: AsyncSession, gateway_message_id: str, *, session_id: uuid.UUID | None
) -> uuid.UUID | None:
    """The id of the message a status webhook is about: one of ``session_id``'s sent through the
    Cloud API, or (``session_id`` None: the simulator's webhook) one sent through the simulator."""
    query = select(WhatsAppMessage.id).where(WhatsAppMessage.gateway_message_id == gateway_message_id)
    if session_id is not None:
        query = query.where(WhatsAppMessage.session_id == session_id, WhatsAppMessage.backend == "cloud")
    else:
        query = query.where(WhatsAppMessage.backend == "simulator")
    return await session.scalar(query)


async def message_by_id(session: AsyncSession, message_id: uuid.UUID) -> WhatsAppMessage | None:
    return await session.get(WhatsAppMessage, message_id)


async def move_message(
    session: AsyncSession, message_id: uuid.UUID, *, only_from: WhatsAppStatus, values: dict[str, Any]
) -> bool:
    """Write ``values`` on the message if it is still in ``only_from``; whether it was."""
    result = await session.execute(
        update(WhatsAppMessage)
        .where(WhatsAppMessage.id == message_id, WhatsAppMessage.status == only_from)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]
