"""Every query on the collections' own tables (payment channels, collections).

A query made for a caller is filtered by its client and mode; the few that are not (a callback
found by its token, the worker's jobs by id, the operator's command line) say why.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Row, bindparam, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from malipo.collections.models import CLOSED_STATES, ChannelType, Collection, CollectionStatus, PaymentChannel

_COLLECTIONS = Collection.__table__


# -- payment channels --------------------------------------------------------------------


async def wallet_channel(session: AsyncSession, client_id: uuid.UUID, mode: str) -> PaymentChannel | None:
    """The merchant's payments-wallet channel in ``mode``, if it was opened."""
    return await session.scalar(
        select(PaymentChannel).where(
            PaymentChannel.client_id == client_id,
            PaymentChannel.mode == mode,
            PaymentChannel.channel_type == ChannelType.WALLET,
        )
    )


async def channels_page(
    session: AsyncSession, client_id: uuid.UUID, mode: str, *, is_active: bool | None, offset: int, limit: int
) -> tuple[list[PaymentChannel], int]:
    """One page of the merchant's channels in ``mode`` (by id), and how many there are."""
    query = select(PaymentChannel).where(PaymentChannel.client_id == client_id, PaymentChannel.mode == mode)
    if is_active is not None:
        query = query.where(PaymentChannel.is_active == is_active)
    total = int(await session.scalar(select(func.count()).select_from(query.subquery())) or 0)
    rows = await session.scalars(query.order_by(PaymentChannel.id).offset(offset).limit(limit))
    return list(rows.all()), total


async def channel_of(
    session: AsyncSession, client_id: uuid.UUID | None, mode: str, channel_id: int
) -> PaymentChannel | None:
    """The channel ``channel_id`` if it is the merchant's in ``mode``."""
    channel = await session.get(PaymentChannel, channel_id)
    if channel is None or channel.client_id != client_id or channel.mode != mode:
        return None
    return channel


async def any_channel(session: AsyncSession, channel_id: int) -> PaymentChannel | None:
    """Any merchant's channel by id: for the operator's command line, which acts for all of them."""
    return await session.get(PaymentChannel, channel_id)


async def active_channel_counts(session: AsyncSession) -> dict[tuple[uuid.UUID, str], int]:
    """How many active channels each merchant has in each mode, by (client, mode): for the
    operator's command line, which lists all merchants."""
    rows = await session.execute(
        select(PaymentChannel.client_id, PaymentChannel.mode, func.count())
        .where(PaymentChannel.is_active.is_(True))
        .group_by(PaymentChannel.client_id, PaymentChannel.mode)
    )
    return {(client_id, mode): count for client_id, mode, count in rows}


async def channel_type(session: AsyncSession, channel_id: int) -> str | None:
    """A channel's type by id (a collection's own channel, when its books are written)."""
    return await session.scalar(select(PaymentChannel.channel_type).where(PaymentChannel.id == channel_id))


# -- collections -------------------------------------------------------------------------


async def by_external_references(
    session: AsyncSession, keys: set[tuple[uuid.UUID, str, str]]
) -> dict[tuple[uuid.UUID, str, str], Collection]:
    """The stored collections with these (client, mode, external_reference) keys, by key."""
    if not keys:
        return {}
    found = await session.scalars(
        select(Collection).where(
            Collection.client_id.in_({key[0] for key in keys}),
            Collection.external_reference.in_({key[2] for key in keys}),
        )
    )
    by_key = {(c.client_id, c.mode, c.external_reference or ""): c for c in found}
    return {key: by_key[key] for key in keys if key in by_key}


async def insert_collections(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    """New collections, one INSERT for all of them."""
    await session.execute(insert(_COLLECTIONS), rows)


async def by_reference(
    session: AsyncSession, client_id: uuid.UUID | None, mode: str, reference: str
) -> Collection | None:
    """The merchant's collection in ``mode`` by malipo's reference or its CheckoutRequestID."""
    return await session.scalar(
        select(Collection).where(
            Collection.client_id == client_id,
            Collection.mode == mode,
            (Collection.reference == reference) | (Collection.checkout_request_id == reference),
        )
    )


async def newest(
    session: AsyncSession, client_id: uuid.UUID | None, mode: str, limit: int
) -> tuple[list[Collection], int]:
    """The merchant's ``limit`` newest collections in ``mode`` (newest first), and how many it has."""
    mine = (Collection.client_id == client_id) & (Collection.mode == mode)
    total = int(await session.scalar(select(func.count()).select_from(Collection).where(mine)) or 0)
    rows = await session.scalars(
        select(Collection)
        .where(mine)
        .order_by(Collection.created_at.desc(), Collection.id.desc())
        .limit(limit)
    )
    return list(rows.all()), total


async def by_id(session: AsyncSession, collection_id: uuid.UUID) -> Collection | None:
    """A collection by id: for jobs and renderers, which carry ids malipo made itself."""
    return await session.get(Collection, collection_id)


async def by_ids(session: AsyncSession, ids: list[uuid.UUID]) -> list[Collection]:
    """Collections by id (the worker's, as ``by_id``)."""
    if not ids:
        return []
    return list((await session.scalars(select(Collection).where(Collection.id.in_(ids)))).all())


async def by_our_reference(session: AsyncSession, reference: str) -> Collection | None:
    """The collection of malipo's reference, whoever's it is: a rail's callback names it (the
    callback's address is the caller's credential)."""
    return await session.scalar(select(Collection).where(Collection.reference == reference))


async def by_token_hash(session: AsyncSession, token_hash: str) -> Collection | None:
    """The collection whose callback address carries the token of this hash (the token is the caller)."""
    return await session.scalar(select(Collection).where(Collection.callback_token_hash == token_hash))


async def locked(session: AsyncSession, collection_id: uuid.UUID) -> Collection | None:
    """The collection, locked and read afresh."""
    return await session.scalar(
        select(Collection)
        .where(Collection.id == collection_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )


async def locked_by_token_hashes(session: AsyncSession, hashes: set[str]) -> dict[str, Collection]:
    """The collections of these callback-token hashes, locked and read afresh, by hash."""
    return {
        collection.callback_token_hash: collection
        for collection in await session.scalars(
            select(Collection)
            .where(Collection.callback_token_hash.in_(hashes))
            .order_by(Collection.id)  # locked in one order: concurrent batches never deadlock
            .with_for_update()
            .execution_options(populate_existing=True)
        )
    }


async def failed_counts_by_mode(session: AsyncSession, result_code: int) -> dict[str, int]:
    """How many collections FAILED with ``result_code``, by mode (all merchants: the operator's metrics)."""
    rows = await session.execute(
        select(Collection.mode, func.count())
        .where(Collection.status == CollectionStatus.FAILED, Collection.result_code == result_code)
        .group_by(Collection.mode)
    )
    return {str(mode): int(count) for mode, count in rows}


# -- the send and reconcile jobs (by id: the worker acts on ids malipo made itself) -----------

_STORE_RAIL_IDS = (
    update(_COLLECTIONS)
    .where(_COLLECTIONS.c.id == bindparam("b_id"))
    .values(
        merchant_request_id=bindparam("b_merchant"),
        provider_checkout_request_id=bindparam("b_checkout"),
        updated_at=bindparam("b_now"),
    )
)


async def claim_queued(session: AsyncSession, ids: list[uuid.UUID], now: datetime) -> list[Row[Any]]:
    """QUEUED → SENT (without sent_at) for those of ``ids`` still QUEUED, in one UPDATE … RETURNING:
    each claimed one's id, phone, amount, reference, mode and network_code."""
    return list(
        (
            await session.execute(
                update(_COLLECTIONS)
                .where(_COLLECTIONS.c.id.in_(ids), _COLLECTIONS.c.status == CollectionStatus.QUEUED)
                .values(status=CollectionStatus.SENT, sent_at=None, updated_at=now)
                .returning(
                    _COLLECTIONS.c.id, _COLLECTIONS.c.phone, _COLLECTIONS.c.amount,
                    _COLLECTIONS.c.reference, _COLLECTIONS.c.mode, _COLLECTIONS.c.network_code,
                )
            )
        ).all()
    )  # fmt: skip


async def stamp_sent(session: AsyncSession, ids: list[uuid.UUID], now: datetime) -> set[uuid.UUID]:
    """Set sent_at on those of ``ids`` still SENT without one (one UPDATE … RETURNING): the ones stamped."""
    return set(
        await session.scalars(
            update(_COLLECTIONS)
            .where(
                _COLLECTIONS.c.id.in_(ids),
                _COLLECTIONS.c.status == CollectionStatus.SENT,
                _COLLECTIONS.c.sent_at.is_(None),
            )
            .values(sent_at=now, updated_at=now)
            .returning(_COLLECTIONS.c.id)
        )
    )


async def store_rail_ids(
    session: AsyncSession, stored: list[tuple[uuid.UUID, str | None, str | None, datetime]]
) -> None:
    """The rail's ids of pushes it accepted, (id, request id, checkout id, now) each: one executemany."""
    await session.execute(
        _STORE_RAIL_IDS,
        [{"b_id": cid, "b_merchant": merchant, "b_checkout": checkout, "b_now": now}
         for cid, merchant, checkout, now in stored],
    )  # fmt: skip


async def locked_unpushed(session: AsyncSession, ids: list[uuid.UUID]) -> list[Collection]:
    """Those of ``ids`` claimed (SENT) and never pushed (no sent_at), locked in id order."""
    return list(
        (
            await session.scalars(
                select(Collection)
                .where(
                    Collection.id.in_(ids),
                    Collection.status == CollectionStatus.SENT,
                    Collection.sent_at.is_(None),
                )
                .order_by(Collection.id)
                .with_for_update()
            )
        ).all()
    )


async def requeue_sent(session: AsyncSession, collection_id: uuid.UUID) -> None:
    """SENT → QUEUED (sent_at cleared): a push the rail never took, to be tried again."""
    await session.execute(
        update(Collection)
        .where(Collection.id == collection_id, Collection.status == CollectionStatus.SENT)
        .values(status=CollectionStatus.QUEUED, sent_at=None)
        .execution_options(synchronize_session=False)
    )


async def open_ids(session: AsyncSession, ids: set[uuid.UUID]) -> set[uuid.UUID]:
    """Those of ``ids`` whose collection is not final yet."""
    return set(
        await session.scalars(
            select(Collection.id).where(Collection.id.in_(ids), Collection.status.not_in(list(CLOSED_STATES)))
        )
    )


def new_channel(
    *, client_id: uuid.UUID, mode: str, channel_type: str, short_code: str, account_number: str | None,
    description: str, now: datetime,
) -> PaymentChannel:  # fmt: skip
    """An active channel, not yet added to a session."""
    return PaymentChannel(
        client_id=client_id, mode=mode, channel_type=channel_type, short_code=short_code,
        account_number=account_number, description=description, is_active=True, created_at=now,
        updated_at=now,
    )  # fmt: skip


async def in_period(session: AsyncSession, mode: str, start: datetime, end: datetime) -> list[Collection]:
    """Every collection of ``mode`` asked for, or finished, in ``[start, end)`` (reconciliation's
    malipo side of a day), any merchant's."""
    asked = (Collection.created_at >= start) & (Collection.created_at < end)
    finished = (Collection.completed_at >= start) & (Collection.completed_at < end)
    query = select(Collection).where(Collection.mode == mode, asked | finished)
    return list((await session.scalars(query.order_by(Collection.created_at))).all())
