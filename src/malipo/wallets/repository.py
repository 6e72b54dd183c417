"""The wallets' queries: a customer's wallet account, its postings and the journals behind them.

A wallet is a ledger account named by its customer; these read the ledger's tables for that
view (the ledger writes them, through its service).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Row, and_, bindparam, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from malipo.customers.models import Customer
from malipo.ledger.models import Journal, LedgerAccount, Posting


async def wallet_account(session: AsyncSession, account_id: uuid.UUID) -> LedgerAccount | None:
    return await session.get(LedgerAccount, account_id)


# Both parties of a transfer and their wallets, in one round trip.
_PARTIES = (
    select(
        Customer.id,
        Customer.client_id,
        Customer.mode,
        LedgerAccount.id.label("wallet_id"),
        LedgerAccount.currency,
    )
    .join(LedgerAccount, LedgerAccount.id == Customer.wallet_account_id)
    .where(Customer.id.in_(bindparam("ids", expanding=True)))
)


async def parties(session: AsyncSession, customer_ids: list[uuid.UUID]) -> dict[uuid.UUID, Row[Any]]:
    """Each customer's id, client_id, mode, wallet_id and currency, by customer id."""
    return {row.id: row for row in await session.execute(_PARTIES, {"ids": customer_ids})}


async def journal_by_key(session: AsyncSession, idempotency_key: str) -> Journal | None:
    found: Journal | None = await session.scalar(
        select(Journal).where(Journal.idempotency_key == idempotency_key)
    )
    return found


async def journal_key_taken(session: AsyncSession, idempotency_key: str) -> bool:
    found = await session.scalar(select(Journal.id).where(Journal.idempotency_key == idempotency_key))
    return found is not None


async def balance_before(session: AsyncSession, account_id: uuid.UUID, moment: datetime | None) -> int:
    """The account's balance after its last posting before ``moment`` (now when None); 0 if none."""
    query = select(Posting.balance_after).where(Posting.account_id == account_id)
    if moment is not None:
        query = query.where(Posting.created_at < moment)
    found = await session.scalar(query.order_by(Posting.created_at.desc(), Posting.id.desc()).limit(1))
    return int(found or 0)


def statement_query(
    account_id: uuid.UUID, *, start: datetime | None, end: datetime | None, entry_type: str | None, chunk: int
) -> Any:
    """The account's postings in [start, end), oldest first, with their journals, ``chunk`` a page."""
    query = (
        select(
            Posting.id,
            Posting.created_at,
            Posting.amount,
            Posting.balance_after,
            Journal.reference,
            Journal.kind,
            Journal.description,
        )
        .join(Journal, Journal.id == Posting.journal_id)
        .where(Posting.account_id == account_id)
        .order_by(Posting.created_at, Posting.id)
        .limit(chunk)
    )
    if start is not None:
        query = query.where(Posting.created_at >= start)
    if end is not None:
        query = query.where(Posting.created_at < end)
    if entry_type == "credit":
        query = query.where(Posting.amount > 0)
    elif entry_type == "debit":
        query = query.where(Posting.amount < 0)
    return query


async def statement_page(
    session: AsyncSession, query: Any, after: tuple[datetime, uuid.UUID] | None
) -> list[Row[Any]]:
    """One page of ``statement_query``: the rows after ``after`` (created_at, id), by keyset."""
    if after is not None:
        query = query.where(
            or_(Posting.created_at > after[0], and_(Posting.created_at == after[0], Posting.id > after[1]))
        )
    return list((await session.execute(query)).all())
