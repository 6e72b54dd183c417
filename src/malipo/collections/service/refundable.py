"""What another domain needs to refund a collection: the collection, locked and scoped to its
merchant, and where its money was booked (refunds take it back from there)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from malipo.collections.models import ChannelType, Collection, CollectionPurpose
from malipo.collections.service import channels
from malipo.collections.service.common import CollectionNotFound, merchant_wallet_id
from malipo.ledger import service as ledger
from malipo.ledger.models import AccountKind

__all__ = [
    "OWN_CHANNEL",
    "PAYMENTS_WALLET",
    "SERVICE_WALLET",
    "clearing_account_id",
    "collection_of",
    "locked_collection_of",
    "paid_into",
    "payments_wallet_id",
]

# ``paid_into`` answers: the merchant's payments wallet in malipo, its own channel, its service wallet.
PAYMENTS_WALLET = "payments_wallet"
OWN_CHANNEL = "own_channel"
SERVICE_WALLET = "service_wallet"


def _by_id_or_reference(collection: str) -> object:
    try:
        return Collection.id == uuid.UUID(collection)
    except ValueError:
        return Collection.reference == collection


async def collection_of(
    session: AsyncSession, client_id: uuid.UUID, mode: str, collection: str, *, lock: bool = False
) -> Collection:
    """The merchant's collection by id or reference (``CollectionNotFound`` for another's: 404)."""
    query = (
        select(Collection)
        .where(_by_id_or_reference(collection), Collection.client_id == client_id, Collection.mode == mode)  # type: ignore[arg-type]
        .execution_options(populate_existing=True)
    )
    found = await session.scalar(query.with_for_update() if lock else query)
    if found is None:
        raise CollectionNotFound.for_field("id", f"no collection {collection}")
    return found


async def locked_collection_of(
    session: AsyncSession, client_id: uuid.UUID, mode: str, collection: str
) -> Collection:
    """``collection_of``, its row locked until the transaction ends (concurrent refunds queue)."""
    return await collection_of(session, client_id, mode, collection, lock=True)


async def paid_into(session: AsyncSession, collection: Collection) -> str:
    """Where a successful collection's money was booked: PAYMENTS_WALLET, OWN_CHANNEL or SERVICE_WALLET."""
    if collection.purpose == CollectionPurpose.TOP_UP:
        return SERVICE_WALLET
    kind = await channels.channel_type(session, collection.channel_id) if collection.channel_id else None
    return PAYMENTS_WALLET if kind in (None, ChannelType.WALLET) else OWN_CHANNEL


async def payments_wallet_id(
    session: AsyncSession, client_id: uuid.UUID, mode: str, now: datetime
) -> uuid.UUID:
    return await merchant_wallet_id(session, client_id, mode, AccountKind.PAYMENTS_WALLET, now)


async def clearing_account_id(session: AsyncSession, currency: str, mode: str, now: datetime) -> uuid.UUID:
    """The rail's clearing account collections are booked against (both networks use it)."""
    return await ledger.system_account_id(session, AccountKind.MOBILE_MONEY_CLEARING, currency, mode, now)
