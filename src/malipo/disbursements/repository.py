"""Every query on the disbursement tables.

A query made for a caller is filtered by its client and mode (``Owner``); the worker's (a chunk of
a batch it was asked to process by id) and the payout listener's (an item found by the payout malipo
made for it) say why they are not.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from malipo.disbursements.models import (
    DisbursementAttempt,
    DisbursementBatch,
    DisbursementItem,
    DisbursementSettings,
    ItemStatus,
)


@dataclass(frozen=True, slots=True)
class Owner:
    """Whose rows: a client in a mode; None only for reports (an operator's: every client; both
    modes unless one is named)."""

    client_id: uuid.UUID | None
    mode: str | None


def _owned(model: Any, owner: Owner) -> list[Any]:
    where = [] if owner.mode is None else [model.mode == owner.mode]
    if owner.client_id is not None:
        where.append(model.client_id == owner.client_id)
    return where


async def batch(
    session: AsyncSession, owner: Owner, batch_id: uuid.UUID, *, lock: bool = False
) -> DisbursementBatch | None:
    query = select(DisbursementBatch).where(
        DisbursementBatch.id == batch_id, *_owned(DisbursementBatch, owner)
    )
    if lock:
        query = query.with_for_update()
    return await session.scalar(query.execution_options(populate_existing=True))


async def batch_by_id(session: AsyncSession, batch_id: uuid.UUID) -> DisbursementBatch | None:
    """For the worker, which carries ids malipo made."""
    return await session.get(DisbursementBatch, batch_id)


async def batches(
    session: AsyncSession, owner: Owner, *, offset: int, limit: int
) -> tuple[list[DisbursementBatch], int]:
    where = _owned(DisbursementBatch, owner)
    total = await session.scalar(select(func.count()).select_from(DisbursementBatch).where(*where)) or 0
    rows = await session.scalars(
        select(DisbursementBatch)
        .where(*where)
        .order_by(DisbursementBatch.created_at.desc(), DisbursementBatch.id.desc())
        .offset(offset)
        .limit(limit)
    )
    return list(rows), total


async def add_batch(session: AsyncSession, row: DisbursementBatch) -> None:
    session.add(row)
    await session.flush()


async def insert_items(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    if rows:
        await session.execute(insert(DisbursementItem.__table__), rows)


async def insert_attempts(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    if rows:
        await session.execute(insert(DisbursementAttempt.__table__), rows)


async def update_batch(session: AsyncSession, batch_id: uuid.UUID, values: dict[str, Any]) -> None:
    await session.execute(update(DisbursementBatch).where(DisbursementBatch.id == batch_id).values(**values))


async def counts(session: AsyncSession, batch_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, dict[str, Any]]:
    """Per batch, per item status: how many and their amount, fee and amount paid."""
    found: dict[uuid.UUID, dict[str, Any]] = {}
    if not batch_ids:
        return found
    rows = await session.execute(
        select(
            DisbursementItem.batch_id, DisbursementItem.status, func.count(),
            func.coalesce(func.sum(DisbursementItem.amount), 0),
            func.coalesce(func.sum(DisbursementItem.paid_amount), 0),
            func.coalesce(func.sum(DisbursementItem.fee), 0),
        )
        .where(DisbursementItem.batch_id.in_(list(batch_ids)))
        .group_by(DisbursementItem.batch_id, DisbursementItem.status)
    )  # fmt: skip
    for batch_id, status, count, amount, paid, fee in rows:
        found.setdefault(batch_id, {})[status] = (int(count), int(amount), int(paid), int(fee))
    return found


async def items(
    session: AsyncSession, owner: Owner, batch_id: uuid.UUID, *, status: str | None, offset: int, limit: int
) -> tuple[list[DisbursementItem], int]:
    where = [DisbursementItem.batch_id == batch_id, *_owned(DisbursementItem, owner)]
    if status is not None:
        where.append(DisbursementItem.status == status)
    total = await session.scalar(select(func.count()).select_from(DisbursementItem).where(*where)) or 0
    rows = await session.scalars(
        select(DisbursementItem).where(*where).order_by(DisbursementItem.row).offset(offset).limit(limit)
    )
    return list(rows), total


async def items_by_ids(
    session: AsyncSession, owner: Owner, batch_id: uuid.UUID, item_ids: Sequence[uuid.UUID]
) -> list[DisbursementItem]:
    rows = await session.scalars(
        select(DisbursementItem)
        .where(
            DisbursementItem.batch_id == batch_id,
            DisbursementItem.id.in_(list(item_ids)),
            *_owned(DisbursementItem, owner),
        )
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return list(rows)


async def not_pending(
    session: AsyncSession, batch_id: uuid.UUID, limit: int
) -> tuple[list[tuple[uuid.UUID, str]], int]:
    """Up to ``limit`` items of the batch that are not Pending (id, status), and how many in all."""
    where = [DisbursementItem.batch_id == batch_id, DisbursementItem.status != ItemStatus.PENDING]
    total = await session.scalar(select(func.count()).select_from(DisbursementItem).where(*where)) or 0
    rows = await session.execute(
        select(DisbursementItem.id, DisbursementItem.status)
        .where(*where)
        .order_by(DisbursementItem.row)
        .limit(limit)
    )
    return [(row[0], row[1]) for row in rows], total


async def pending_count(session: AsyncSession, batch_id: uuid.UUID, status: str = ItemStatus.PENDING) -> int:
    """How many of the batch's items are in ``status`` (Pending unless said)."""
    return (
        await session.scalar(
            select(func.count())
            .select_from(DisbursementItem)
            .where(DisbursementItem.batch_id == batch_id, DisbursementItem.status == status)
        )
        or 0
    )


async def claim_pending(session: AsyncSession, batch_id: uuid.UUID, limit: int) -> list[DisbursementItem]:
    """The next ``limit`` Pending items of a batch, in row order, locked for this transaction
    (items another transaction holds are skipped on PostgreSQL; SQLite has one writer)."""
    rows = await session.scalars(
        select(DisbursementItem)
        .where(DisbursementItem.batch_id == batch_id, DisbursementItem.status == ItemStatus.PENDING)
        .order_by(DisbursementItem.row)
        .limit(limit)
        .with_for_update(skip_locked=True)
        .execution_options(populate_existing=True)
    )
    return list(rows)


async def move_items(session: AsyncSession, changes: list[dict[str, Any]], *, expect: str) -> None:
    """Each change (``id`` and the new values) applied to its item while it is in ``expect``."""
    if not changes:
        return
    by_shape: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for change in changes:
        by_shape.setdefault(tuple(sorted(change)), []).append(change)
    table = DisbursementItem.__table__
    for shape, group in by_shape.items():
        values = {name: _param(name) for name in shape if name != "id"}
        await session.execute(
            update(table).where(table.c.id == _param("id"), table.c.status == expect).values(**values),
            [{f"p_{k}": v for k, v in change.items()} for change in group],
        )


def _param(name: str) -> Any:
    return bindparam(f"p_{name}")


async def items_paid_by(session: AsyncSession, payout_ids: list[uuid.UUID]) -> dict[uuid.UUID, uuid.UUID]:
    """The items in flight paid by these payouts: item id by payout id (payouts of no batch are not
    there)."""
    if not payout_ids:
        return {}
    rows = await session.execute(
        select(DisbursementItem.payout_id, DisbursementItem.id).where(
            DisbursementItem.payout_id.in_(payout_ids), DisbursementItem.status == ItemStatus.PROCESSING
        )
    )
    return {payout_id: item_id for payout_id, item_id in rows if payout_id is not None}


_ITEMS = DisbursementItem.__table__
_FINISH_ITEM = (
    update(_ITEMS)
    .where(_ITEMS.c.id == bindparam("b_id"), _ITEMS.c.status == ItemStatus.PROCESSING.value)
    .values(
        status=bindparam("b_status"), paid_amount=bindparam("b_paid"), fee=bindparam("b_fee"),
        provider_reference=bindparam("b_receipt"), completed_at=bindparam("b_completed"),
        updated_at=bindparam("b_now"), result_code=bindparam("b_code"), result_desc=bindparam("b_desc"),
    )
)  # fmt: skip
_ATTEMPTS = DisbursementAttempt.__table__
_FINISH_ATTEMPT = (
    update(_ATTEMPTS)
    .where(_ATTEMPTS.c.payout_id == bindparam("b_payout"))
    .values(
        status=bindparam("b_status"), completed_at=bindparam("b_now"), result_code=bindparam("b_code"),
        result_desc=bindparam("b_desc"),
    )
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class ItemResult:
    """The final state of an item in flight, from its payout."""

    item_id: uuid.UUID
    payout_id: uuid.UUID
    status: str
    paid_amount: int | None
    fee: int
    provider_reference: str | None
    result_code: str | None
    result_desc: str | None
    completed_at: datetime | None


async def finish_items(session: AsyncSession, results: list[ItemResult], now: datetime) -> None:
    """Items in flight take their final state, and their attempts too: one executemany each."""
    if not results:
        return
    await session.execute(
        _FINISH_ITEM,
        [{"b_id": r.item_id, "b_status": r.status, "b_paid": r.paid_amount, "b_fee": r.fee,
          "b_receipt": r.provider_reference, "b_completed": r.completed_at, "b_now": now,
          "b_code": r.result_code, "b_desc": r.result_desc} for r in results],
    )  # fmt: skip
    await session.execute(
        _FINISH_ATTEMPT,
        [{"b_payout": r.payout_id, "b_status": r.status, "b_now": now, "b_code": r.result_code,
          "b_desc": r.result_desc} for r in results],
    )  # fmt: skip


async def attempts(
    session: AsyncSession, owner: Owner, *, retries_only: bool, offset: int, limit: int
) -> tuple[list[tuple[DisbursementAttempt, DisbursementItem]], int]:
    where = _owned(DisbursementAttempt, owner)
    if retries_only:
        where.append(DisbursementAttempt.number > 1)
    total = await session.scalar(select(func.count()).select_from(DisbursementAttempt).where(*where)) or 0
    rows = await session.execute(
        select(DisbursementAttempt, DisbursementItem)
        .join(DisbursementItem, DisbursementItem.id == DisbursementAttempt.item_id)
        .where(*where)
        .order_by(DisbursementAttempt.created_at.desc(), DisbursementAttempt.id.desc())
        .offset(offset)
        .limit(limit)
    )
    return [(row[0], row[1]) for row in rows], total


async def failed_items(
    session: AsyncSession, owner: Owner, *, offset: int, limit: int
) -> tuple[list[DisbursementItem], int]:
    where = [DisbursementItem.status == ItemStatus.FAILED, *_owned(DisbursementItem, owner)]
    total = await session.scalar(select(func.count()).select_from(DisbursementItem).where(*where)) or 0
    rows = await session.scalars(
        select(DisbursementItem)
        .where(*where)
        .order_by(DisbursementItem.updated_at.desc(), DisbursementItem.id)
        .offset(offset)
        .limit(limit)
    )
    return list(rows), total


async def all_items(
    session: AsyncSession, batch_id: uuid.UUID, *, after: int, limit: int
) -> list[DisbursementItem]:
    """A batch's items in row order, after row ``after`` (for reports read page by page)."""
    rows = await session.scalars(
        select(DisbursementItem)
        .where(DisbursementItem.batch_id == batch_id, DisbursementItem.row > after)
        .order_by(DisbursementItem.row)
        .limit(limit)
    )
    return list(rows)


async def payout_ids(session: AsyncSession, batch_id: uuid.UUID) -> list[uuid.UUID]:
    """Every payout made for a batch's items, retries' earlier payouts included."""
    rows = await session.scalars(
        select(DisbursementAttempt.payout_id).where(
            DisbursementAttempt.batch_id == batch_id, DisbursementAttempt.payout_id.is_not(None)
        )
    )
    return [row for row in rows if row is not None]


async def settings_of(session: AsyncSession, client_id: uuid.UUID) -> DisbursementSettings | None:
    return await session.get(DisbursementSettings, client_id, populate_existing=True)


async def save_settings(
    session: AsyncSession, client_id: uuid.UUID, threshold: int | None, by: uuid.UUID, now: datetime
) -> None:
    row = await settings_of(session, client_id)
    if row is None:
        session.add(
            DisbursementSettings(
                client_id=client_id, approval_threshold=threshold, updated_by=by, updated_at=now
            )
        )
    else:
        row.approval_threshold, row.updated_by, row.updated_at = threshold, by, now
    await session.flush()
