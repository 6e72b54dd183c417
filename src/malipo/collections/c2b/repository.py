"""Every query on the C2B tables. A query made for a caller is filtered by its client and mode;
the ones a callback makes (by token hash, by TransID, by channel id) say so."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from malipo.collections.c2b.models import (
    C2bChannel,
    C2bPayment,
    PaymentRequest,
    PaymentRequestPayment,
    PaymentRequestStatus,
)


async def c2b_channel(session: AsyncSession, channel_id: int) -> C2bChannel | None:
    """A channel's C2B rules (the caller has checked the channel is the merchant's, or is a callback)."""
    return await session.get(C2bChannel, channel_id)


async def c2b_channel_by_token_hash(session: AsyncSession, token_hash: str) -> C2bChannel | None:
    """The own-shortcode channel a validation or confirmation URL belongs to (a callback)."""
    return await session.scalar(select(C2bChannel).where(C2bChannel.token_hash == token_hash))


async def c2b_payment_by_trans_id(session: AsyncSession, trans_id: str) -> C2bPayment | None:
    """The payment of a TransID (a callback: TransIDs are M-Pesa's, unique across merchants)."""
    return await session.scalar(select(C2bPayment).where(C2bPayment.trans_id == trans_id))


async def c2b_payment_of_collection(session: AsyncSession, collection_id: uuid.UUID) -> C2bPayment | None:
    return await session.scalar(select(C2bPayment).where(C2bPayment.collection_id == collection_id))


async def expire_due(session: AsyncSession, client_id: uuid.UUID, mode: str, now: datetime) -> None:
    """Open requests of the merchant whose time is up become EXPIRED (expiry happens on read)."""
    await session.execute(
        update(PaymentRequest)
        .where(
            PaymentRequest.client_id == client_id,
            PaymentRequest.mode == mode,
            PaymentRequest.status == PaymentRequestStatus.OPEN,
            PaymentRequest.expires_at <= now,
        )
        .values(status=PaymentRequestStatus.EXPIRED, updated_at=now)
        .execution_options(synchronize_session="fetch")
    )


async def request_of(
    session: AsyncSession, client_id: uuid.UUID, mode: str, request_id: uuid.UUID, *, lock: bool = False
) -> PaymentRequest | None:
    query = select(PaymentRequest).where(
        PaymentRequest.id == request_id, PaymentRequest.client_id == client_id, PaymentRequest.mode == mode
    )
    if lock:
        query = query.with_for_update()
    return await session.scalar(query)


async def newest_request_with_reference(
    session: AsyncSession, client_id: uuid.UUID, mode: str, reference: str, *, lock: bool = False
) -> PaymentRequest | None:
    """The merchant's open request with ``reference``, else its newest one (settled, expired or
    cancelled: a payment of it is an overpayment)."""
    query = (
        select(PaymentRequest)
        .where(
            PaymentRequest.client_id == client_id,
            PaymentRequest.mode == mode,
            func.upper(PaymentRequest.account_reference) == reference.upper(),
        )
        .order_by(
            (PaymentRequest.status == PaymentRequestStatus.OPEN).desc(), PaymentRequest.created_at.desc()
        )
        .limit(1)
    )
    if lock:
        query = query.with_for_update()
    return await session.scalar(query)


async def requests_page(
    session: AsyncSession, client_id: uuid.UUID, mode: str, *, status: str | None, overpaid: bool | None,
    offset: int, limit: int,
) -> tuple[list[PaymentRequest], int]:  # fmt: skip
    query = select(PaymentRequest).where(PaymentRequest.client_id == client_id, PaymentRequest.mode == mode)
    if status is not None:
        query = query.where(PaymentRequest.status == status)
    if overpaid is not None:
        query = query.where((PaymentRequest.overpaid_amount > 0) == overpaid)
    total = int(await session.scalar(select(func.count()).select_from(query.subquery())) or 0)
    rows = await session.scalars(
        query.order_by(PaymentRequest.created_at.desc(), PaymentRequest.id).offset(offset).limit(limit)
    )
    return list(rows.all()), total


async def payments_of(session: AsyncSession, request_ids: list[uuid.UUID]) -> list[PaymentRequestPayment]:
    if not request_ids:
        return []
    rows = await session.scalars(
        select(PaymentRequestPayment)
        .where(PaymentRequestPayment.request_id.in_(request_ids))
        .order_by(PaymentRequestPayment.created_at, PaymentRequestPayment.id)
    )
    return list(rows.all())


async def counted(session: AsyncSession, collection_id: uuid.UUID) -> bool:
    found = await session.scalar(
        select(PaymentRequestPayment.id).where(PaymentRequestPayment.collection_id == collection_id)
    )
    return found is not None
