"""/api/v1 routes of payment channels, for API keys (in the key's mode) and the merchant's
portal users (live).

Each route's ``name`` is its permission name; ``callers(...)`` says who may call it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query, status
from pydantic import BeforeValidator
from sqlalchemy.ext.asyncio import AsyncSession

from malipo.collections import service as collections
from malipo.collections.models import ChannelType, PaymentChannel
from malipo.collections.schemas import ChannelIn, ChannelOut, ChannelPage
from malipo.core.errors import ValidationFailed
from malipo.http.deps import ClockDep, Session
from malipo.http.permissions import CA, KEY, CurrentPrincipal, callers
from malipo.http.schemas import MAX_ID, plain_integer
from malipo.http.tags import CHANNELS

router = APIRouter(tags=[CHANNELS])

# A plain {id} (no converter): an id that is not a number is a 422 naming it, after authorisation.
ChannelIdPath = Annotated[
    int, BeforeValidator(plain_integer), Path(ge=1, le=MAX_ID, description="The channel's id")
]


async def channel_out(session: AsyncSession, channel: PaymentChannel, now: datetime) -> ChannelOut:
    balance = await collections.channel_balance(session, channel, now)
    return ChannelOut(
        id=channel.id,
        channel_type=channel.channel_type,  # type: ignore[arg-type]
        transaction_type=collections.transaction_type(channel),
        mode=channel.mode,  # type: ignore[arg-type]
        short_code=channel.short_code,
        account_number=channel.account_number,
        description=channel.description,
        is_active=channel.is_active,
        balance=None if balance is None else balance.format(),
        currency=None if balance is None else balance.currency,
        created_at=channel.created_at,
        updated_at=channel.updated_at,
    )


@router.post(
    "/channels", response_model=ChannelOut, status_code=status.HTTP_201_CREATED, name="Channels.Create",
    summary="Register a channel",
    openapi_extra=callers(CA, KEY),
)  # fmt: skip
async def create_channel(
    body: ChannelIn, who: CurrentPrincipal, session: Session, clock: ClockDep
) -> ChannelOut:
    """Register your paybill, till or bank account as a channel that collections can pay into."""
    if body.channel_type == ChannelType.BANK and not body.account_number:
        raise ValidationFailed.for_field("accountNumber", "a bank channel needs the account number")
    channel = await collections.create_channel(
        session, who, channel_type=body.channel_type, short_code=body.short_code,
        account_number=body.account_number, description=body.description, now=clock.now(),
    )  # fmt: skip
    return await channel_out(session, channel, clock.now())


@router.get(
    "/channels",
    response_model=ChannelPage,
    name="Channels.List",
    summary="List your channels",
    openapi_extra=callers(CA, KEY),
)
async def list_channels(
    who: CurrentPrincipal,
    session: Session,
    clock: ClockDep,
    is_active: Annotated[bool | None, Query(alias="isActive", description="Only active or inactive")] = None,
    page: Annotated[int, BeforeValidator(plain_integer), Query(ge=1, le=100_000)] = 1,
    page_size: Annotated[int, BeforeValidator(plain_integer), Query(alias="pageSize", ge=1, le=100)] = 20,
) -> ChannelPage:
    """Your channels in this mode, oldest first; the payments wallet channel is always among them."""
    found, total = await collections.list_channels(
        session, who, is_active=is_active, page=page, per=page_size, now=clock.now()
    )
    return ChannelPage(
        channels=[await channel_out(session, c, clock.now()) for c in found],
        page=page,
        page_size=page_size,
        total=total,
    )


@router.get(
    "/channels/{id}",
    response_model=ChannelOut,
    name="Channels.Read",
    summary="Get a channel",
    openapi_extra=callers(CA, KEY),
)
async def read_channel(
    id: ChannelIdPath, who: CurrentPrincipal, session: Session, clock: ClockDep
) -> ChannelOut:
    """One of your channels, with its balance if it is your payments wallet."""
    return await channel_out(session, await collections.get_channel(session, who, id), clock.now())


@router.post(
    "/channels/{id}/deactivate", response_model=ChannelOut, name="Channels.Deactivate",
    summary="Deactivate a channel",
    openapi_extra=callers(CA, KEY),
)  # fmt: skip
async def deactivate_channel(
    id: ChannelIdPath, who: CurrentPrincipal, session: Session, clock: ClockDep
) -> ChannelOut:
    """New collections to the channel are refused; the payments wallet channel cannot be deactivated (409)."""
    channel = await collections.get_channel(session, who, id)
    await collections.set_channel_active(session, channel, False, now=clock.now())
    return await channel_out(session, channel, clock.now())


@router.post(
    "/channels/{id}/activate", response_model=ChannelOut, name="Channels.Activate",
    summary="Activate a channel",
    openapi_extra=callers(CA, KEY),
)  # fmt: skip
async def activate_channel(
    id: ChannelIdPath, who: CurrentPrincipal, session: Session, clock: ClockDep
) -> ChannelOut:
    """Accept new collections to the channel again."""
    channel = await collections.get_channel(session, who, id)
    await collections.set_channel_active(session, channel, True, now=clock.now())
    return await channel_out(session, channel, clock.now())
