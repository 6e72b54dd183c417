"""Reading the books for the layers above: an account, a journal by its key, an account's statement.

The ledger owns its tables; a domain that shows ledger data (a wallet's statement, a payment's
earlier journal) asks here instead of querying them. Writes go through ``ledger.service``.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Row, Select, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from malipo.ledger import repository
from malipo.ledger.models import Journal, LedgerAccount, Posting


async def get_account(session: AsyncSession, account_id: uuid.UUID) -> LedgerAccount | None:
    """The ledger account ``account_id``, or None."""
    return await repository.get_account(session, account_id)


def with_account(query: Select[Any], account_id: ColumnElement[uuid.UUID]) -> Select[Any]:
    """``query`` with the account its ``account_id`` column names joined in, adding that account's
    ``account_id`` and ``currency``: a caller reads its rows and their accounts in one round trip."""
    return repository.with_account(query, account_id)


async def journal_by_key(session: AsyncSession, idempotency_key: str) -> Journal | None:
    """The journal posted with ``idempotency_key``, or None."""
    return await repository.journal_by_key(session, idempotency_key)


async def balance_before(session: AsyncSession, account_id: uuid.UUID, moment: datetime | None) -> int:
    """The account's balance after its last posting dated before ``moment`` (its latest posting
    when None); 0 if none. "Last" is in the order postings were written, whatever their dates say."""
    return await repository.balance_before(session, account_id, moment)


def statement_query(
    account_id: uuid.UUID, *, start: datetime | None, end: datetime | None, entry_type: str | None, chunk: int
) -> Any:
    """The account's postings dated in [start, end) (``entry_type`` "credit" or "debit" keeps one
    side), in the order they were written (by ``seq``, never by the writer's clock), with their
    ``seq`` and their journals' reference, kind and description, ``chunk`` rows a page."""
    return repository.statement_query(account_id, start=start, end=end, entry_type=entry_type, chunk=chunk)


async def statement_page(session: AsyncSession, query: Any, after: int | None) -> list[Row[Any]]:
    """One page of ``statement_query``: the rows after the one whose ``seq`` is ``after``, by keyset."""
    return await repository.statement_page(session, query, after)


async def account_movement(
    session: AsyncSession, account_id: uuid.UUID, *, kinds: tuple[str, ...] = (),
    start: datetime | None = None, end: datetime | None = None, journal_ids: tuple[uuid.UUID, ...] = (),
) -> int:  # fmt: skip
    """The net of ``account_id``'s postings in journals of ``kinds`` written in ``[start, end)``,
    plus those in the journals ``journal_ids`` (counted once): how reconciliation ties a day's
    report to the books."""
    conditions = []
    if kinds and start is not None and end is not None:
        in_window = (Journal.created_at >= start) & (Journal.created_at < end)
        conditions.append(Journal.kind.in_(kinds) & in_window)
    if journal_ids:
        conditions.append(Journal.id.in_(journal_ids))
    if not conditions:
        return 0
    query = (
        select(func.coalesce(func.sum(Posting.amount), 0))
        .join(Journal, Journal.id == Posting.journal_id)
        .where(Posting.account_id == account_id, or_(*conditions))
    )
    return int(await session.scalar(query) or 0)
