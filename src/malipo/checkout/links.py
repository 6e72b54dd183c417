"""Payment links: a merchant's standing page ``/pay/{slug}`` where anyone pays it by M-Pesa.

Each payment opens a checkout session of the link (its amount, or the payer's within the link's
bounds) and sends its STK push; the session then follows the rules of ``checkout.service``.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from malipo.checkout import repository
from malipo.checkout.models import CheckoutSession, PaymentLink
from malipo.checkout.service import (
    NewSession,
    PaymentLinkNotFound,
    SlugTaken,
    check_channel,
    create_session,
    merchant_of,
    pay_mpesa,
)
from malipo.collections import service as collections
from malipo.config import Settings
from malipo.core.errors import FieldError, ValidationFailed
from malipo.core.ids import new_id, new_reference
from malipo.core.logging import get_logger
from malipo.core.money import Money
from malipo.identity.principals import Principal

log = get_logger("malipo.checkout")

CURRENCY = collections.CURRENCY
SLUG = re.compile(r"[a-z0-9](?:[a-z0-9-]{1,38}[a-z0-9])")


@dataclass(frozen=True, slots=True)
class NewLink:
    title: str
    amount: object | None = None  # None: the payer chooses
    min_amount: object | None = None
    max_amount: object | None = None
    description: str | None = None
    slug: str | None = None
    channel_id: int | None = None
    callback_url: str | None = None
    success_url: str | None = None


def _whole(value: object, field: str) -> int:
    """Minor units of a whole number of shillings from 1 to M-Pesa's maximum."""
    amount = Money.parse(value, CURRENCY, field=field)  # type: ignore[arg-type]
    if amount.amount % 100 or not 1 <= amount.amount // 100 <= collections.MAX_AMOUNT:
        raise ValidationFailed.for_field(
            field,
            f"must be a whole number of shillings from 1 to {collections.MAX_AMOUNT:,} (M-Pesa's limits)",
        )
    return amount.amount


async def create_link(session: AsyncSession, who: Principal, body: NewLink, *, now: datetime) -> PaymentLink:
    assert who.client_id is not None
    amount = None if body.amount is None else _whole(body.amount, "amount")
    low = 100 if body.min_amount is None else _whole(body.min_amount, "minAmount")
    high = collections.MAX_AMOUNT * 100 if body.max_amount is None else _whole(body.max_amount, "maxAmount")
    if low > high:
        raise ValidationFailed.for_field("minAmount", "must not be more than maxAmount")
    if amount is not None and (body.min_amount is not None or body.max_amount is not None):
        raise ValidationFailed.for_field("minAmount", "only a link without a fixed amount has bounds")
    await check_channel(session, who, body.channel_id, "channelId")
    slug = body.slug or new_reference(10).lower()
    link = PaymentLink(
        id=new_id(), slug=slug, client_id=who.client_id, mode=who.mode.value, api_user_id=who.api_user_id,
        title=body.title, description=body.description, amount=amount, min_amount=low, max_amount=high,
        currency=CURRENCY, channel_id=body.channel_id, callback_url=body.callback_url,
        success_url=body.success_url, is_active=True, created_at=now, updated_at=now,
    )  # fmt: skip
    try:
        async with session.begin_nested():
            session.add(link)
            await session.flush()
    except IntegrityError:
        raise SlugTaken(
            f"the slug {slug!r} is taken: choose another", errors=[FieldError("slug", "is taken")]
        ) from None
    log.info("payment_link.created", slug=slug)
    return link


async def get_link(session: AsyncSession, who: Principal, link_id: uuid.UUID) -> PaymentLink:
    assert who.client_id is not None
    found = await repository.link_of_client(session, who.client_id, who.mode.value, link_id)
    if found is None:
        raise PaymentLinkNotFound(f"no payment link {link_id}", errors=[FieldError("linkId", "no such link")])
    return found


async def list_links(session: AsyncSession, who: Principal) -> list[PaymentLink]:
    assert who.client_id is not None
    return await repository.links_of_client(session, who.client_id, who.mode.value)


async def set_active(
    session: AsyncSession, who: Principal, link_id: uuid.UUID, active: bool, *, now: datetime
) -> PaymentLink:
    link = await get_link(session, who, link_id)
    link.is_active = active
    link.updated_at = now
    await session.flush()
    return link


async def paid_counts(session: AsyncSession, links: list[PaymentLink]) -> dict[uuid.UUID, tuple[int, int]]:
    return await repository.paid_counts(session, [link.id for link in links])


async def find_by_slug(session: AsyncSession, slug: str) -> PaymentLink | None:
    return await repository.link_by_slug(session, slug)


async def public_link(session: AsyncSession, slug: str) -> PaymentLink:
    """An active link by its slug; PaymentLinkNotFound for an unknown or deactivated one."""
    found = await repository.link_by_slug(session, slug) if SLUG.fullmatch(slug) else None
    if found is None or not found.is_active:
        raise PaymentLinkNotFound(f"no payment link {slug!r}")
    return found


async def pay_link(
    session: AsyncSession, slug: str, amount: Any, phone: str, *, settings: Settings, now: datetime
) -> CheckoutSession:
    """A checkout session of the link for this payment, its STK push sent to ``phone``."""
    link = await public_link(session, slug)
    if link.amount is not None:
        minor = link.amount
    else:
        if amount is None or amount == "":
            raise ValidationFailed.for_field("amount", "enter the amount to pay")
        minor = _whole(amount, "amount")
        if not link.min_amount <= minor <= link.max_amount:
            low, high = Money(link.min_amount, CURRENCY), Money(link.max_amount, CURRENCY)
            raise ValidationFailed.for_field("amount", f"must be from {low} to {high}")
    new = NewSession(
        amount=Money(minor, CURRENCY).format(), currency=CURRENCY, return_url=link.success_url,
        callback_url=link.callback_url, description=link.title, channel_id=link.channel_id,
    )  # fmt: skip
    cs = await create_session(session, merchant_of(link), new, now=now, link=link)
    return await pay_mpesa(session, cs.public_id, phone, settings=settings, now=now)
