"""A bulk batch's messages by status and a page of them, for any table with ``batch_id`` and ``status``
(SMS and WhatsApp batches): the query each domain's repository runs on its own table."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession


async def batch_page(
    session: AsyncSession, model: Any, batch_id: uuid.UUID, *, page: int, page_size: int
) -> tuple[dict[str, int], list[Any]]:
    """(messages per status, the page's messages in id order) of ``model`` rows in the batch."""
    counts = {
        state: int(count)
        for state, count in await session.execute(
            select(model.status, func.count()).where(model.batch_id == batch_id).group_by(model.status)
        )
    }
    messages = await session.scalars(
        select(model)
        .where(model.batch_id == batch_id)
        .order_by(model.id)
        .offset((page - 1) * page_size)
        .limit(page_size)
    )
    return counts, list(messages.all())
