"""Every query on the cards' own tables.

A query made for a caller is filtered by its client and mode; the worker's (by id) say why.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from datetime import datetime
from typing import Any

from sqlalchemy import case, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from malipo.cards.models import CardAuthorization, CardToken
from malipo.db.filters import newest_page, tenant_filter


async def token_of_client(
    session: AsyncSession, client_id: uuid.UUID, mode: str, token: str
) -> CardToken | None:
    return await session.scalar(
        select(CardToken).where(
            CardToken.token == token, CardToken.client_id == client_id, CardToken.mode == mode
        )
    )


async def token_by_id(session: AsyncSession, token_id: uuid.UUID) -> CardToken | None:
    """A token by its row id: for an authorisation already scoped to its client."""
    return await session.get(CardToken, token_id)


async def first_with_fingerprint(
    session: AsyncSession, client_id: uuid.UUID, mode: str, fingerprint: str
) -> CardToken | None:
    return await session.scalar(
        select(CardToken)
        .where(CardToken.client_id == client_id, CardToken.mode == mode, CardToken.fingerprint == fingerprint)
        .order_by(CardToken.created_at)
        .limit(1)
    )


async def authorization_of_client(
    session: AsyncSession, client_id: uuid.UUID, mode: str, authorization_id: uuid.UUID
) -> CardAuthorization | None:
    return await session.scalar(
        select(CardAuthorization)
        .where(
            CardAuthorization.id == authorization_id,
            CardAuthorization.client_id == client_id,
            CardAuthorization.mode == mode,
        )
        .execution_options(populate_existing=True)
    )


async def authorization_by_id(session: AsyncSession, authorization_id: uuid.UUID) -> CardAuthorization | None:
    """An authorisation by id, read afresh: for jobs, which carry ids malipo made itself."""
    return await session.scalar(
        select(CardAuthorization)
        .where(CardAuthorization.id == authorization_id)
        .execution_options(populate_existing=True)
    )


async def move(
    session: AsyncSession,
    authorization_id: uuid.UUID,
    from_states: Collection[str],
    values: dict[str, Any],
    *,
    refunded_amount: int | None = None,
) -> bool:
    """Set ``values`` if the authorisation is in one of ``from_states`` (and, given
    ``refunded_amount``, has refunded exactly that): whether it moved. The guard makes every
    transition happen once, whoever races for it."""
    where = [CardAuthorization.id == authorization_id, CardAuthorization.status.in_(list(from_states))]
    if refunded_amount is not None:
        where.append(CardAuthorization.refunded_amount == refunded_amount)
    moved = await session.execute(
        update(CardAuthorization).where(*where).values(**values).execution_options(synchronize_session=False)
    )
    return bool(moved.rowcount == 1)  # type: ignore[attr-defined]


def _report_filter(
    client_id: uuid.UUID | None,
    mode: str | None,
    status: str | None,
    since: datetime | None,
    until: datetime | None,
) -> list[Any]:
    return tenant_filter(CardAuthorization, client_id, mode, status, since, until)


async def authorizations_page(
    session: AsyncSession,
    client_id: uuid.UUID | None,
    mode: str | None,
    *,
    status: str | None,
    since: datetime | None,
    until: datetime | None,
    offset: int,
    limit: int,
) -> tuple[list[CardAuthorization], int]:
    """A page of authorisations, newest first, and how many match (``client_id`` None: every
    client's; ``mode`` None: both)."""
    where = _report_filter(client_id, mode, status, since, until)
    return await newest_page(session, CardAuthorization, where, offset=offset, limit=limit)


async def authorization_totals(
    session: AsyncSession,
    client_id: uuid.UUID | None,
    mode: str | None,
    *,
    since: datetime | None,
    until: datetime | None,
) -> list[tuple[Any, ...]]:
    """Per currency and status: (currency, status, how many, their amount, the amount approved (of
    those the issuer authorised), captured, refunded, fees), amounts in minor units."""
    approved = case((CardAuthorization.authorized_at.is_not(None), CardAuthorization.amount), else_=0)
    rows = await session.execute(
        select(
            CardAuthorization.currency,
            CardAuthorization.status,
            func.count(),
            func.coalesce(func.sum(CardAuthorization.amount), 0),
            func.coalesce(func.sum(approved), 0),
            func.coalesce(func.sum(CardAuthorization.captured_amount), 0),
            func.coalesce(func.sum(CardAuthorization.refunded_amount), 0),
            func.coalesce(func.sum(CardAuthorization.fee), 0),
        )
        .where(*_report_filter(client_id, mode, None, since, until))
        .group_by(CardAuthorization.currency, CardAuthorization.status)
        .order_by(CardAuthorization.currency, CardAuthorization.status)
    )
    return [tuple(row) for row in rows.all()]
