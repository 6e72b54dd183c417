"""What reconciliation reads of collections (``collections.tasks.settle_by_query`` settles one
nobody answered, by its own reconcile job's path)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from malipo.collections import repository
from malipo.collections.models import Collection, CollectionStatus


async def collections_in_period(
    session: AsyncSession, mode: str, start: datetime, end: datetime
) -> list[Collection]:
    """Every collection of ``mode`` asked for or finished in ``[start, end)``, any merchant's."""
    return await repository.in_period(session, mode, start, end)


def left_unanswered(collection: Collection, *, now: datetime, delay_seconds: float) -> bool:
    """Still SENT, with its push made more than the reconcile delay ago: its callback never came."""
    sent = collection.sent_at
    return (
        collection.status == CollectionStatus.SENT
        and sent is not None
        and (now - sent).total_seconds() >= delay_seconds
    )
