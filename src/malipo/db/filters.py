"""WHERE clauses the report queries of several domains share."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

T = TypeVar("T")


def tenant_filter(
    model: Any,
    client_id: uuid.UUID | None,
    mode: str | None,
    status: str | None,
    since: datetime | None,
    until: datetime | None,
) -> list[Any]:
    """``model``'s rows of a client (None: every client's) and mode (None: both), in a status
    (None: any), created in [``since``, ``until``): the clauses for the arguments given."""
    where: list[Any] = []
    if client_id is not None:
        where.append(model.client_id == client_id)
    if mode is not None:
        where.append(model.mode == mode)
    if status is not None:
        where.append(model.status == status)
    if since is not None:
        where.append(model.created_at >= since)
    if until is not None:
        where.append(model.created_at < until)
    return where


async def newest_page(
    session: AsyncSession, model: type[T], where: list[Any], *, offset: int, limit: int
) -> tuple[list[T], int]:
    """A page of ``model``'s rows matching ``where``, newest first, and how many match."""
    table: Any = model
    total = await session.scalar(select(func.count()).select_from(table).where(*where)) or 0
    rows = await session.scalars(
        select(table).where(*where).order_by(table.created_at.desc(), table.id).offset(offset).limit(limit)
    )
    return list(rows), int(total)
