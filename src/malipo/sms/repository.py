"""Every query on the SMS tables (``sms_batches``, ``sms_messages``).

Reads for a caller are filtered by its client and mode. The worker's and the delivery reports'
queries go by message id or gateway id: those ids come from malipo's own jobs or the provider.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row, bindparam, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from malipo.db.batches import batch_page
from malipo.sms.models import SmsBatch, SmsMessage, SmsStatus, SystemSms

_TABLE = SmsMessage.__table__
# One statement for a whole chunk's accepted recipients (executemany over the b_ parameters).
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


async def message_of(
    session: AsyncSession, client_id: uuid.UUID | None, mode: str, sms_id: uuid.UUID
) -> SmsMessage | None:
    return await session.scalar(
        select(SmsMessage).where(
            SmsMessage.id == sms_id, SmsMessage.client_id == client_id, SmsMessage.mode == mode
        )
    )


async def batch_of(
    session: AsyncSession, client_id: uuid.UUID | None, mode: str, batch_id: uuid.UUID
) -> SmsBatch | None:
    return await session.scalar(
        select(SmsBatch).where(
            SmsBatch.id == batch_id, SmsBatch.client_id == client_id, SmsBatch.mode == mode
        )
    )


async def batch_messages(
    session: AsyncSession, batch: SmsBatch, *, page: int, page_size: int
) -> tuple[dict[str, int], list[SmsMessage]]:
    """(messages per status, one page of them) of a batch already found for its client and mode."""
    return await batch_page(session, SmsMessage, batch.id, page=page, page_size=page_size)


async def insert_messages(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    """A bulk's messages in one multi-row INSERT."""
    await session.execute(insert(_TABLE), rows)


# -- the send job ---------------------------------------------------------------------------------


async def claim_queued(session: AsyncSession, ids: list[uuid.UUID], *, now: datetime) -> Sequence[Row[Any]]:
    """The messages of ``ids`` still ``queued`` (id, mode, number, text, sender), each counted as
    one more attempt."""
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
    if rows:
        await session.execute(
            update(SmsMessage)
            .where(SmsMessage.id.in_([row.id for row in rows]))
            .values(attempts=SmsMessage.attempts + 1, updated_at=now)
            .execution_options(synchronize_session=False)
        )
    return rows


async def mark_sent(session: AsyncSession, accepted: list[dict[str, Any]], *, now: datetime) -> None:
    """``sent`` (from ``queued`` only) with the gateway's id and word, per row of ``accepted``
    (b_id, b_gateway_id, b_gateway_status)."""
    # One executemany for the whole chunk: a round trip per row would queue behind
    # everything else the event loop is doing (a bulk's delivery reports arriving).
    await session.execute(_MARK_SENT.values(sent_at=now, updated_at=now), accepted)


async def update_queued(session: AsyncSession, ids: list[uuid.UUID], values: dict[str, Any]) -> None:
    """Write ``values`` on the messages of ``ids`` that are still ``queued``."""
    await session.execute(
        update(SmsMessage)
        .where(SmsMessage.id.in_(ids), SmsMessage.status == SmsStatus.QUEUED)
        .values(**values)
        .execution_options(synchronize_session=False)
    )


async def fail_queued(
    session: AsyncSession, ids: list[uuid.UUID], values: dict[str, Any]
) -> Sequence[Row[Any]]:
    """Write ``values`` (a failure) on the still ``queued`` messages of ``ids``; those changed, with
    what a refund needs (id, client_id, mode, cost, currency)."""
    return (
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


# -- delivery reports -----------------------------------------------------------------------------


async def lock_by_gateway_ids(session: AsyncSession, gateway_ids: list[str]) -> Sequence[Row[Any]]:
    """(id, gateway_message_id, status) of the reported messages, locked in id order (PostgreSQL)."""
    return (
        await session.execute(
            select(SmsMessage.id, SmsMessage.gateway_message_id, SmsMessage.status)
            .where(SmsMessage.gateway_message_id.in_(gateway_ids))
            .order_by(SmsMessage.id)
            .with_for_update()
        )
    ).all()


async def update_sent(
    session: AsyncSession, ids: list[uuid.UUID], values: dict[str, Any], *, now: datetime
) -> None:
    """Write ``values`` on the messages of ``ids`` that are still ``sent`` (a final state never moves)."""
    await session.execute(
        update(SmsMessage)
        .where(SmsMessage.id.in_(ids), SmsMessage.status == SmsStatus.SENT)
        .values(**values, updated_at=now)
        .execution_options(synchronize_session=False)
    )


async def add_system_messages(
    session: AsyncSession, gateway_ids: list[str], purpose: str, now: datetime
) -> None:
    session.add_all(
        SystemSms(
            gateway_message_id=gid, purpose=purpose, status=SmsStatus.SENT, created_at=now, updated_at=now
        )
        for gid in gateway_ids
    )
    await session.flush()


async def system_messages(session: AsyncSession, gateway_ids: list[str]) -> dict[str, SystemSms]:
    rows = await session.scalars(select(SystemSms).where(SystemSms.gateway_message_id.in_(gateway_ids)))
    return {row.gateway_message_id: row for row in rows.all()}
