"""Every query on the reconciliation tables (operator data: not scoped to a merchant)."""

from __future__ import annotations

import uuid
from datetime import date

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from malipo.reconciliation.models import ItemStatus, ReconciliationItem, ReconciliationRun, Resolution


async def run_for(
    session: AsyncSession, day: date, mode: str, *, lock: bool = False
) -> ReconciliationRun | None:
    query = select(ReconciliationRun).where(ReconciliationRun.day == day, ReconciliationRun.mode == mode)
    if lock:
        query = query.with_for_update()
    return await session.scalar(query)


async def items_of(session: AsyncSession, run_id: uuid.UUID) -> list[ReconciliationItem]:
    query = select(ReconciliationItem).where(ReconciliationItem.run_id == run_id)
    return list(
        (await session.scalars(query.order_by(ReconciliationItem.kind, ReconciliationItem.match_key))).all()
    )


async def locked_item(session: AsyncSession, item_id: uuid.UUID) -> ReconciliationItem | None:
    query = select(ReconciliationItem).where(ReconciliationItem.id == item_id).with_for_update()
    return await session.scalar(query)


async def item_by_id(session: AsyncSession, item_id: uuid.UUID) -> ReconciliationItem | None:
    return await session.get(ReconciliationItem, item_id)


async def run_by_id(session: AsyncSession, run_id: uuid.UUID) -> ReconciliationRun | None:
    return await session.get(ReconciliationRun, run_id)


async def refunds_in_flight(session: AsyncSession) -> list[ReconciliationItem]:
    """Items whose refund to the payer was asked of the rail and has no result yet (a handful)."""
    query = select(ReconciliationItem).where(
        ReconciliationItem.status == ItemStatus.PENDING, ReconciliationItem.resolution == Resolution.REFUND
    )
    return list((await session.scalars(query)).all())
