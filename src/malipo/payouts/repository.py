"""Every query on the payouts' own table.

A query made for a caller is filtered by its client and mode; the few that are not (a result
found by its callback token, the worker's and the operator's by id) say why.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Row, bindparam, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from malipo.payouts.models import PAYOUT_CLOSED_STATES, Payout, PayoutStatus


async def by_external_reference(
    session: AsyncSession, client_id: uuid.UUID, mode: str, external_reference: str
) -> Payout | None:
    return await session.scalar(
        select(Payout).where(
            Payout.client_id == client_id,
            Payout.mode == mode,
            Payout.external_reference == external_reference,
        )
    )


async def by_reference(
    session: AsyncSession, client_id: uuid.UUID | None, mode: str, reference: str
) -> Payout | None:
    """The merchant's payout in ``mode`` by malipo's reference or its OriginatorConversationID."""
    return await session.scalar(
        select(Payout).where(
            Payout.client_id == client_id,
            Payout.mode == mode,
            (Payout.reference == reference) | (Payout.originator_conversation_id == reference),
        )
    )


async def insert_many(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    """New payouts, one multi-row INSERT."""
    if rows:
        await session.execute(insert(Payout.__table__), rows)


async def by_our_id(session: AsyncSession, our_id: str) -> Payout | None:
    """The payout sent with this id of ours (its OriginatorConversationID), whoever's it is."""
    return await session.scalar(select(Payout).where(Payout.originator_conversation_id == our_id))


async def by_token_hash(session: AsyncSession, token_hash: str) -> Payout | None:
    """The payout whose result address carries the token of this hash (the token is the caller)."""
    return await session.scalar(select(Payout).where(Payout.callback_token_hash == token_hash))


async def by_id(session: AsyncSession, payout_id: uuid.UUID) -> Payout | None:
    """A payout by id: for jobs, reviews and renderers, which carry ids malipo made itself."""
    return await session.get(Payout, payout_id)


async def by_ids(session: AsyncSession, ids: list[uuid.UUID]) -> list[Payout]:
    if not ids:
        return []
    return list((await session.scalars(select(Payout).where(Payout.id.in_(ids)))).all())


async def fresh(session: AsyncSession, payout_id: uuid.UUID) -> Payout | None:
    """The payout read afresh (not the session's copy)."""
    return await session.scalar(
        select(Payout).where(Payout.id == payout_id).execution_options(populate_existing=True)
    )


async def locked(session: AsyncSession, payout_id: uuid.UUID) -> Payout | None:
    """The payout, locked and read afresh."""
    return await session.scalar(
        select(Payout)
        .where(Payout.id == payout_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )


async def locked_by_token_hashes(session: AsyncSession, hashes: set[str]) -> dict[str, Payout]:
    """The payouts whose result addresses carry the tokens of these hashes, locked and read afresh,
    by hash."""
    if not hashes:
        return {}
    return {
        payout.callback_token_hash: payout
        for payout in await session.scalars(
            select(Payout)
            .where(Payout.callback_token_hash.in_(hashes))
            .order_by(Payout.id)  # locked in one order: concurrent batches never deadlock
            .with_for_update()
            .execution_options(populate_existing=True)
        )
    }


async def newest(
    session: AsyncSession, client_id: uuid.UUID | None, mode: str, limit: int
) -> tuple[list[Payout], int]:
    """The merchant's ``limit`` newest payouts in ``mode`` (newest first), and how many it has."""
    mine = (Payout.client_id == client_id) & (Payout.mode == mode)
    total = int(await session.scalar(select(func.count()).select_from(Payout).where(mine)) or 0)
    rows = await session.scalars(
        select(Payout).where(mine).order_by(Payout.created_at.desc(), Payout.id.desc()).limit(limit)
    )
    return list(rows.all()), total


# -- the send job (by id: the worker acts on ids malipo made itself) ---------------------------


async def claim_queued(session: AsyncSession, ids: list[uuid.UUID], now: datetime) -> list[Row[Any]]:
    """QUEUED → SENT (sent_at now) for those of ``ids`` still QUEUED, in one UPDATE … RETURNING what
    each send needs."""
    claimed = await session.execute(
        update(Payout)
        .where(Payout.id.in_(ids), Payout.status == PayoutStatus.QUEUED)
        .values(status=PayoutStatus.SENT, sent_at=now, updated_at=now)
        .returning(
            Payout.id,
            Payout.channel,
            Payout.network_code,
            Payout.phone,
            Payout.account_number,
            Payout.amount,
            Payout.reference,
            Payout.mode,
            Payout.originator_conversation_id,
        )
        .execution_options(synchronize_session=False)
    )
    return list(claimed.all())


async def requeue_sent(session: AsyncSession, payout_id: uuid.UUID) -> None:
    """SENT → QUEUED (sent_at cleared): a payment the rail never took, to be tried again."""
    await session.execute(
        update(Payout)
        .where(Payout.id == payout_id, Payout.status == PayoutStatus.SENT)
        .values(status=PayoutStatus.QUEUED, sent_at=None)
        .execution_options(synchronize_session=False)
    )


_STORE_CONVERSATION_ID = (
    update(Payout.__table__)
    .where(Payout.__table__.c.id == bindparam("b_id"))
    .values(conversation_id=bindparam("b_conversation"), updated_at=bindparam("b_now"))
)


async def store_conversation_ids(
    session: AsyncSession, stored: list[tuple[uuid.UUID, str]], now: datetime
) -> None:
    """The rail's ids of the payments it accepted, (payout id, ConversationID) each: one executemany."""
    await session.execute(
        _STORE_CONVERSATION_ID,
        [{"b_id": payout_id, "b_conversation": ref, "b_now": now} for payout_id, ref in stored],
    )


async def awaiting_result(session: AsyncSession, ids: set[uuid.UUID]) -> set[uuid.UUID]:
    """Those of ``ids`` sent and still without their result (neither closed nor put back QUEUED)."""
    answered = [*PAYOUT_CLOSED_STATES, PayoutStatus.QUEUED]
    query = select(Payout.id).where(Payout.id.in_(ids), Payout.status.not_in(answered))
    return set(await session.scalars(query))


async def sent_before(
    session: AsyncSession, mode: str, start: datetime, sent_by: datetime
) -> list[uuid.UUID]:
    """Payouts of ``mode`` asked for since ``start`` and still SENT, sent before ``sent_by``: their
    result never came (reconciliation asks about them before its report)."""
    query = select(Payout.id).where(
        Payout.mode == mode, Payout.status == PayoutStatus.SENT, Payout.created_at >= start,
        Payout.sent_at.is_not(None), Payout.sent_at <= sent_by,
    )  # fmt: skip
    return list((await session.scalars(query)).all())
