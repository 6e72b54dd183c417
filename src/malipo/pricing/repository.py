"""Every query on the merchants' tariffs (one row per client and kind)."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from malipo.pricing.models import MerchantPricing, PricingKind


async def tariff_row(
    session: AsyncSession, client_id: uuid.UUID, kind: PricingKind
) -> MerchantPricing | None:
    """The client's own tariff of ``kind``, if the operator set one."""
    found: MerchantPricing | None = await session.scalar(
        select(MerchantPricing).where(MerchantPricing.client_id == client_id, MerchantPricing.kind == kind)
    )
    return found


async def tariff_rows(session: AsyncSession, client_id: uuid.UUID) -> list[MerchantPricing]:
    """The client's own tariffs, of either kind."""
    return list(
        (await session.scalars(select(MerchantPricing).where(MerchantPricing.client_id == client_id))).all()
    )


async def add_tariff(session: AsyncSession, row: MerchantPricing) -> None:
    """Insert ``row``; the unique (client, kind) constraint raises IntegrityError if one exists."""
    session.add(row)
    await session.flush()
