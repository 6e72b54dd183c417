"""Payment channels: the merchant's payments wallet (opened on first use) and its own paybills,
tills and bank paybills, which collections can pay into."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from malipo.collections import repository
from malipo.collections.models import TRANSACTION_TYPES, ChannelType, PaymentChannel
from malipo.collections.service.common import CURRENCY
from malipo.core.errors import Conflict, FieldError, NotFound, ValidationFailed
from malipo.core.logging import get_logger
from malipo.core.money import Money
from malipo.db import cache_after_commit, cached
from malipo.identity.models import KeyMode
from malipo.identity.principals import Principal, PrincipalKind
from malipo.ledger import service as ledger
from malipo.ledger.models import AccountKind

log = get_logger("malipo.collections")

WALLET_CHANNELS = "collections.wallet_channels"  # the cache of wallet channel ids (``cached``)
CHANNEL_TYPES = "collections.channel_types"  # the cache of channel types


class WalletChannelLocked(Conflict):
    code = "wallet_channel"
    title = "The payments wallet channel cannot be deactivated"


async def wallet_channel(
    session: AsyncSession, client_id: uuid.UUID, mode: str, now: datetime
) -> PaymentChannel:
    """The merchant's payments-wallet channel in ``mode``, opened on first use."""
    found = await repository.wallet_channel(session, client_id, mode)
    if found is not None:
        return found
    channel = repository.new_channel(
        client_id=client_id, mode=mode, channel_type=ChannelType.WALLET, short_code="", account_number=None,
        description="Payments wallet", now=now,
    )  # fmt: skip
    try:
        async with session.begin_nested():
            session.add(channel)
            await session.flush()
    except IntegrityError:  # opened by a concurrent request: use that one
        found = await repository.wallet_channel(session, client_id, mode)
        assert found is not None
        return found
    channel.short_code = str(channel.id)
    return channel


async def create_channel(
    session: AsyncSession,
    who: Principal,
    *,
    channel_type: str,
    short_code: str,
    account_number: str | None,
    description: str,
    now: datetime,
) -> PaymentChannel:
    if channel_type not in (ChannelType.PAYBILL, ChannelType.TILL, ChannelType.BANK):
        raise ValidationFailed.for_field("channel_type", "must be paybill, till or bank")
    if not (short_code.isascii() and short_code.isdigit()) or not 5 <= len(short_code) <= 10:
        raise ValidationFailed.for_field("short_code", "must be a paybill, till or bank paybill number")
    if channel_type == ChannelType.BANK and not account_number:
        raise ValidationFailed.for_field("account_number", "a bank channel needs the account number")
    assert who.client_id is not None
    channel = repository.new_channel(
        client_id=who.client_id, mode=who.mode.value, channel_type=channel_type, short_code=short_code,
        account_number=account_number or None, description=description, now=now,
    )  # fmt: skip
    session.add(channel)
    await session.flush()
    return channel


async def list_channels(
    session: AsyncSession, who: Principal, *, is_active: bool | None, page: int, per: int, now: datetime
) -> tuple[list[PaymentChannel], int]:
    assert who.client_id is not None
    await wallet_channel(session, who.client_id, who.mode.value, now)
    return await repository.channels_page(
        session, who.client_id, who.mode.value, is_active=is_active, offset=(page - 1) * per, limit=per
    )


async def get_channel(session: AsyncSession, who: Principal, channel_id: int) -> PaymentChannel:
    channel = await repository.channel_of(session, who.client_id, who.mode.value, channel_id)
    if channel is None:
        raise NotFound(f"no payment channel {channel_id}")
    return channel


async def wallet_channel_id(session: AsyncSession, client_id: uuid.UUID, mode: str, now: datetime) -> int:
    """``wallet_channel(...).id``, cached once its transaction commits (the channel is permanent)."""
    key = (client_id, mode)
    found: int | None = cached(session, WALLET_CHANNELS, key)
    if found is None:
        found = (await wallet_channel(session, client_id, mode, now)).id
        cache_after_commit(session, WALLET_CHANNELS, key, found)
    return found


async def channel_type(session: AsyncSession, channel_id: int) -> str | None:
    """A channel's type (which never changes), cached once its transaction commits."""
    found: str | None = cached(session, CHANNEL_TYPES, channel_id)
    if found is None:
        found = await repository.channel_type(session, channel_id)
        if found is not None:
            cache_after_commit(session, CHANNEL_TYPES, channel_id, found)
    return found


def transaction_type(channel: PaymentChannel) -> str:
    return TRANSACTION_TYPES[ChannelType(channel.channel_type)]


async def channel_balance(session: AsyncSession, channel: PaymentChannel, now: datetime) -> Money | None:
    """The payments wallet's balance for the wallet channel; None for the merchant's own channels."""
    if channel.channel_type != ChannelType.WALLET:
        return None
    account = await ledger.merchant_wallet(
        session, channel.client_id, AccountKind.PAYMENTS_WALLET, CURRENCY, channel.mode, now
    )
    return Money(account.balance, account.currency)


# -- channel management (native API and CLI) ---------------------------------------------


def acting_for(client_id: uuid.UUID, mode: str) -> Principal:
    """The merchant ``client_id`` in ``mode``, as the operator's command line acts for it."""
    return Principal(
        kind=PrincipalKind.PORTAL, id=client_id, client_id=client_id, role_ids=(), role_names=frozenset(),
        mode=KeyMode(mode),
    )  # fmt: skip


async def set_channel_active(
    session: AsyncSession, channel: PaymentChannel, active: bool, *, now: datetime
) -> PaymentChannel:
    """Activate or deactivate ``channel``; doing it twice changes nothing.

    The payments wallet channel is where collections without a channel go: it stays active.
    """
    if not active and channel.channel_type == ChannelType.WALLET:
        raise WalletChannelLocked(
            f"payment channel {channel.id} is the payments wallet: it cannot be deactivated",
            errors=[FieldError("id", "the payments wallet channel cannot be deactivated")],
        )
    if channel.is_active != active:
        channel.is_active = active
        channel.updated_at = now
        await session.flush()
        log.info("channel.activated" if active else "channel.deactivated", channel_id=channel.id)
    return channel


async def find_channel(session: AsyncSession, channel_id: int) -> PaymentChannel:
    """Any merchant's channel by id (the operator's command line); NotFound if there is none."""
    channel = await repository.any_channel(session, channel_id)
    if channel is None:
        raise NotFound(f"no payment channel {channel_id}")
    return channel


async def find_channel_or_none(session: AsyncSession, channel_id: int) -> PaymentChannel | None:
    """Any merchant's channel by id, or None (a rail's callback names it: C2B's account number)."""
    return await repository.any_channel(session, channel_id)


async def active_channel_counts(session: AsyncSession) -> dict[tuple[uuid.UUID, str], int]:
    """Every merchant's active channels, counted by (client id, mode) (the operator's command line)."""
    return await repository.active_channel_counts(session)
