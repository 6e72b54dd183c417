"""The SQL of checkout sessions and payment links."""

from __future__ import annotations

import uuid
from collections.abc import Collection
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from malipo.checkout.models import CheckoutSession, PaymentLink
from malipo.db.filters import newest_page, tenant_filter


async def session_by_public_id(session: AsyncSession, public_id: str) -> CheckoutSession | None:
    return await session.scalar(
        select(CheckoutSession)
        .where(CheckoutSession.public_id == public_id)
        .execution_options(populate_existing=True)
    )


async def session_by_id(session: AsyncSession, session_id: uuid.UUID) -> CheckoutSession | None:
    return await session.scalar(
        select(CheckoutSession)
        .where(CheckoutSession.id == session_id)
        .execution_options(populate_existing=True)
    )


async def session_of_client(
    session: AsyncSession, client_id: uuid.UUID, mode: str, public_id: str
) -> CheckoutSession | None:
    return await session.scalar(
        select(CheckoutSession).where(
            CheckoutSession.public_id == public_id,
            CheckoutSession.client_id == client_id,
            CheckoutSession.mode == mode,
        )
    )


async def session_by_collection(session: AsyncSession, collection_id: uuid.UUID) -> CheckoutSession | None:
    return await session.scalar(
        select(CheckoutSession)
        .where(CheckoutSession.collection_id == collection_id)
        .execution_options(populate_existing=True)
    )


def _filter(
    client_id: uuid.UUID | None,
    mode: str | None,
    status: str | None,
    since: datetime | None,
    until: datetime | None,
) -> list[Any]:
    return tenant_filter(CheckoutSession, client_id, mode, status, since, until)


async def sessions_of_client(
    session: AsyncSession,
    client_id: uuid.UUID | None,
    mode: str | None,
    *,
    status: str | None,
    since: datetime | None,
    until: datetime | None,
    offset: int,
    limit: int,
) -> tuple[list[CheckoutSession], int]:
    """A page of sessions, newest first, and how many match (``client_id`` None: every client's)."""
    where = _filter(client_id, mode, status, since, until)
    return await newest_page(session, CheckoutSession, where, offset=offset, limit=limit)


async def session_totals(
    session: AsyncSession,
    client_id: uuid.UUID | None,
    mode: str | None,
    *,
    since: datetime | None,
    until: datetime | None,
) -> list[tuple[Any, ...]]:
    """Per currency and status: (currency, status, how many sessions, their amount in minor units)."""
    rows = await session.execute(
        select(
            CheckoutSession.currency,
            CheckoutSession.status,
            func.count(),
            func.coalesce(func.sum(CheckoutSession.amount), 0),
        )
        .where(*_filter(client_id, mode, None, since, until))
        .group_by(CheckoutSession.currency, CheckoutSession.status)
        .order_by(CheckoutSession.currency, CheckoutSession.status)
    )
    return [tuple(row) for row in rows.all()]


async def move(
    session: AsyncSession, session_id: uuid.UUID, from_states: Collection[str], values: dict[str, Any]
) -> bool:
    """Set ``values`` if the session is in one of ``from_states``: whether it moved (once, whoever races)."""
    moved = await session.execute(
        update(CheckoutSession)
        .where(CheckoutSession.id == session_id, CheckoutSession.status.in_(list(from_states)))
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return bool(moved.rowcount == 1)  # type: ignore[attr-defined]


async def link_by_slug(session: AsyncSession, slug: str) -> PaymentLink | None:
    return await session.scalar(select(PaymentLink).where(PaymentLink.slug == slug))


async def link_of_client(
    session: AsyncSession, client_id: uuid.UUID, mode: str, link_id: uuid.UUID
) -> PaymentLink | None:
    return await session.scalar(
        select(PaymentLink).where(
            PaymentLink.id == link_id, PaymentLink.client_id == client_id, PaymentLink.mode == mode
        )
    )


async def links_of_client(session: AsyncSession, client_id: uuid.UUID, mode: str) -> list[PaymentLink]:
    rows = await session.scalars(
        select(PaymentLink)
        .where(PaymentLink.client_id == client_id, PaymentLink.mode == mode)
        .order_by(PaymentLink.created_at.desc(), PaymentLink.id)
    )
    return list(rows)


async def paid_counts(session: AsyncSession, link_ids: list[uuid.UUID]) -> dict[uuid.UUID, tuple[int, int]]:
    """Per link: how many of its sessions completed, and their total (minor units)."""
    if not link_ids:
        return {}
    rows = await session.execute(
        select(CheckoutSession.link_id, func.count(), func.coalesce(func.sum(CheckoutSession.amount), 0))
        .where(CheckoutSession.link_id.in_(link_ids), CheckoutSession.status == "completed")
        .group_by(CheckoutSession.link_id)
    )
    return {link_id: (int(count), int(total)) for link_id, count, total in rows.all()}
