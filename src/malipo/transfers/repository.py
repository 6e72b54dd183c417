"""Every query on the transfers' own tables.

A query made for a caller is filtered by its client and mode; the few that are not (a status
report found by its callback token, the worker's by id) say why.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from datetime import datetime
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from malipo.transfers.models import BlockedDestination, Transfer, TransferStatus

# Transfers that still stand (velocity and duplicates count them): not failed or cancelled.
STANDING = (
    TransferStatus.PENDING,
    TransferStatus.PROCESSING,
    TransferStatus.COMPLETED,
    TransferStatus.REVIEW,
)


async def of_client(
    session: AsyncSession, client_id: uuid.UUID, mode: str, transfer_id: uuid.UUID
) -> Transfer | None:
    return await session.scalar(
        select(Transfer).where(
            Transfer.id == transfer_id, Transfer.client_id == client_id, Transfer.mode == mode
        )
    )


async def by_id(session: AsyncSession, transfer_id: uuid.UUID, *, lock: bool = False) -> Transfer | None:
    """A transfer by id, read afresh: for jobs, which carry ids malipo made itself."""
    query = select(Transfer).where(Transfer.id == transfer_id).execution_options(populate_existing=True)
    if lock:
        query = query.with_for_update()
    return await session.scalar(query)


async def by_token_hash(session: AsyncSession, token_hash: str) -> Transfer | None:
    """The transfer whose status address carries the token of this hash (the token is the caller)."""
    return await session.scalar(select(Transfer).where(Transfer.callback_token_hash == token_hash))


async def move(
    session: AsyncSession, transfer_id: uuid.UUID, from_states: Collection[str], values: dict[str, Any]
) -> bool:
    """Set ``values`` on the transfer if it is in one of ``from_states``; whether it moved (the
    guard makes every transition happen once, whoever races for it)."""
    moved = await session.execute(
        update(Transfer)
        .where(Transfer.id == transfer_id, Transfer.status.in_(list(from_states)))
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return bool(moved.rowcount == 1)  # type: ignore[attr-defined]


async def page(
    session: AsyncSession,
    client_id: uuid.UUID,
    mode: str,
    *,
    statuses: Collection[str] | None,
    since: datetime | None,
    until: datetime | None,
    offset: int,
    limit: int,
) -> tuple[list[Transfer], int]:
    """The client's transfers in ``mode``, newest first, and how many match in all."""
    where = [Transfer.client_id == client_id, Transfer.mode == mode]
    if statuses is not None:
        where.append(Transfer.status.in_(list(statuses)))
    if since is not None:
        where.append(Transfer.created_at >= since)
    if until is not None:
        where.append(Transfer.created_at < until)
    return await _newest_first(session, where, offset, limit)


async def _newest_first(
    session: AsyncSession, where: list[Any], offset: int, limit: int
) -> tuple[list[Transfer], int]:
    total = await session.scalar(select(func.count()).select_from(Transfer).where(*where))
    rows = await session.scalars(
        select(Transfer)
        .where(*where)
        .order_by(Transfer.created_at.desc(), Transfer.id.desc())
        .offset(offset)
        .limit(limit)
    )
    return list(rows.all()), int(total or 0)


# -------------------------------------------------------------------------- fraud rules' reads


async def standing_totals(
    session: AsyncSession,
    client_id: uuid.UUID,
    mode: str,
    since: datetime,
    *,
    api_user_id: uuid.UUID | None = None,
    destination: str | None = None,
) -> tuple[int, int]:
    """How many standing transfers since ``since``, and their total, by an API user or to a destination."""
    where = [
        Transfer.client_id == client_id,
        Transfer.mode == mode,
        Transfer.created_at > since,
        Transfer.status.in_(STANDING),
    ]
    if api_user_id is not None:
        where.append(Transfer.api_user_id == api_user_id)
    if destination is not None:
        where.append(Transfer.account_number == destination)
    row = (
        await session.execute(select(func.count(), func.coalesce(func.sum(Transfer.amount), 0)).where(*where))
    ).one()
    return int(row[0]), int(row[1])


async def has_duplicate(
    session: AsyncSession, client_id: uuid.UUID, mode: str, destination: str, amount: int, since: datetime
) -> bool:
    found = await session.scalar(
        select(Transfer.id)
        .where(
            Transfer.client_id == client_id,
            Transfer.mode == mode,
            Transfer.account_number == destination,
            Transfer.amount == amount,
            Transfer.created_at > since,
            Transfer.status.in_(STANDING),
        )
        .limit(1)
    )
    return found is not None


async def has_paid(session: AsyncSession, client_id: uuid.UUID, mode: str, destination: str) -> bool:
    found = await session.scalar(
        select(Transfer.id)
        .where(
            Transfer.client_id == client_id,
            Transfer.mode == mode,
            Transfer.account_number == destination,
            Transfer.status == TransferStatus.COMPLETED,
        )
        .limit(1)
    )
    return found is not None


async def blocked_reason(session: AsyncSession, client_id: uuid.UUID, destination: str) -> str | None:
    """Why ``destination`` is blocked for the client (its own list, or the operator's for all)."""
    return await session.scalar(
        select(BlockedDestination.reason)
        .where(
            BlockedDestination.destination == destination,
            or_(BlockedDestination.client_id == client_id, BlockedDestination.client_id.is_(None)),
        )
        .limit(1)
    )


async def blocklist(session: AsyncSession, client_id: uuid.UUID | None) -> list[BlockedDestination]:
    where = (
        BlockedDestination.client_id.is_(None)
        if client_id is None
        else BlockedDestination.client_id == client_id
    )
    rows = await session.scalars(
        select(BlockedDestination).where(where).order_by(BlockedDestination.created_at)
    )
    return list(rows.all())


async def blocked_entry(session: AsyncSession, entry_id: uuid.UUID) -> BlockedDestination | None:
    return await session.get(BlockedDestination, entry_id)


async def claim_unsent(session: AsyncSession, transfer_id: uuid.UUID, now: datetime) -> bool:
    """Mark a PROCESSING transfer sent, if nobody has: whether this caller did."""
    moved = await session.execute(
        update(Transfer)
        .where(
            Transfer.id == transfer_id,
            Transfer.status == TransferStatus.PROCESSING,
            Transfer.sent_at.is_(None),
        )
        .values(sent_at=now, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    return bool(moved.rowcount == 1)  # type: ignore[attr-defined]


async def unclaim(session: AsyncSession, transfer_id: uuid.UUID) -> None:
    """The rail never had it: it may be sent again."""
    await session.execute(
        update(Transfer)
        .where(Transfer.id == transfer_id, Transfer.status == TransferStatus.PROCESSING)
        .values(sent_at=None)
        .execution_options(synchronize_session=False)
    )


async def by_payouts(session: AsyncSession, payout_ids: list[uuid.UUID]) -> list[Transfer]:
    """The bulk mobile entries these payouts pay (the payouts' ids are malipo's own)."""
    if not payout_ids:
        return []
    return list((await session.scalars(select(Transfer).where(Transfer.payout_id.in_(payout_ids)))).all())


async def incoming_page(
    session: AsyncSession, client_id: uuid.UUID, mode: str, *, offset: int, limit: int
) -> tuple[list[Transfer], int]:
    """Client-to-client entries paid to ``client_id`` in ``mode``, newest first."""
    where = [Transfer.destination_client_id == client_id, Transfer.mode == mode]
    return await _newest_first(session, where, offset, limit)
