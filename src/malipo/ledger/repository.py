"""Every query on the ledger's tables: accounts, journals, postings and holds.

Statements the hot paths run are built once, at import: building one costs more than
running it. The rules (balance, limits, funds) are the service's; this module reads and
writes what it is told.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Row,
    Select,
    bindparam,
    case,
    func,
    insert,
    literal,
    literal_column,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from malipo.ledger.models import AccountKind, Hold, HoldStatus, Journal, LedgerAccount, Posting

_JOURNALS = Journal.__table__
_POSTINGS = Posting.__table__
_ACCOUNTS = LedgerAccount.__table__
_HOLDS = Hold.__table__

# -- accounts -----------------------------------------------------------------------


def _account_query(owner: str, kind: AccountKind, currency: str, mode: str) -> Any:
    return select(LedgerAccount).where(
        LedgerAccount.owner_key == owner,
        LedgerAccount.kind == kind,
        LedgerAccount.currency == currency,
        LedgerAccount.mode == mode,
    )


async def find_account(
    session: AsyncSession, *, owner: str, kind: AccountKind, currency: str, mode: str
) -> LedgerAccount | None:
    """The account of ``owner`` for ``kind``/``currency``/``mode``, if it exists."""
    found: LedgerAccount | None = await session.scalar(_account_query(owner, kind, currency, mode))
    return found


async def add_account(session: AsyncSession, account: LedgerAccount) -> LedgerAccount:
    """Insert ``account``, or answer the same account a concurrent request inserted first."""
    try:
        async with session.begin_nested():
            session.add(account)
            await session.flush()
    except IntegrityError:  # opened by a concurrent request: use that one
        found = await find_account(
            session, owner=account.owner_key, kind=AccountKind(account.kind), currency=account.currency,
            mode=account.mode,
        )  # fmt: skip
        assert found is not None
        return found
    return account


# The accounts a journal touches, locked in id order: two journals over the same accounts
# queue for them in the same order and never deadlock. (SQLite has one writer: no FOR UPDATE.)
_LOCK_ACCOUNTS = (
    select(
        LedgerAccount.id,
        LedgerAccount.currency,
        LedgerAccount.balance,
        LedgerAccount.held,
        LedgerAccount.allow_negative,
    )
    .where(LedgerAccount.id.in_(bindparam("ids", expanding=True)))
    .order_by(LedgerAccount.id)
    .with_for_update()
)


async def lock_accounts(session: AsyncSession, account_ids: list[uuid.UUID]) -> dict[uuid.UUID, Row[Any]]:
    """Lock the accounts (in id order) and answer each one's currency, balance, held, allow_negative."""
    return {row.id: row for row in await session.execute(_LOCK_ACCOUNTS, {"ids": account_ids})}


_LOCK_ACCOUNT = (
    select(_ACCOUNTS.c.currency, _ACCOUNTS.c.balance, _ACCOUNTS.c.held, _ACCOUNTS.c.allow_negative)
    .where(_ACCOUNTS.c.id == bindparam("id"))
    .with_for_update()
)


async def lock_account(session: AsyncSession, account_id: uuid.UUID) -> Row[Any] | None:
    """Lock one account and answer its currency, balance, held and allow_negative (None if missing)."""
    return (await session.execute(_LOCK_ACCOUNT, {"id": account_id})).first()


def per_account(amounts: dict[uuid.UUID, int]) -> Any:
    """``CASE id WHEN … THEN amount …``: one UPDATE gives each account its own amount."""
    # BIGINT: amounts in minor units pass 2**31 (21 million shillings).
    whens = [(_ACCOUNTS.c.id == account, literal(amount, BigInteger)) for account, amount in amounts.items()]
    return case(*whens)


async def apply_balances(session: AsyncSession, net: dict[uuid.UUID, int]) -> None:
    """One guarded UPDATE for every account (already locked and checked)."""
    net = {account_id: amount for account_id, amount in net.items() if amount != 0}
    if not net:
        return
    accounts = _ACCOUNTS.c
    delta = per_account(net)
    guard = accounts.allow_negative | (delta >= 0) | (accounts.balance + delta - accounts.held >= 0)
    updated = (
        await session.execute(
            update(_ACCOUNTS)
            .where(accounts.id.in_(list(net)), guard)
            .values(balance=accounts.balance + delta)
            .returning(accounts.id)
        )
    ).all()
    if len(updated) != len(net):  # the lock makes this impossible; never write a partial journal
        raise RuntimeError(f"ledger: {len(net) - len(updated)} locked account(s) refused the update")


async def balance_row(session: AsyncSession, account_id: uuid.UUID) -> tuple[int, int] | None:
    """(balance, balance - held) of an account, or None if there is none."""
    row = (
        await session.execute(
            select(LedgerAccount.balance, LedgerAccount.balance - LedgerAccount.held).where(
                LedgerAccount.id == account_id
            )
        )
    ).first()
    return None if row is None else (int(row[0]), int(row[1]))


async def get_account(session: AsyncSession, account_id: uuid.UUID) -> LedgerAccount | None:
    return await session.get(LedgerAccount, account_id)


def with_account(query: Select[Any], account_id: ColumnElement[uuid.UUID]) -> Select[Any]:
    """``query`` joined to the account ``account_id`` names, adding its ``account_id`` and ``currency``."""
    return query.add_columns(LedgerAccount.id.label("account_id"), LedgerAccount.currency).join(
        LedgerAccount, LedgerAccount.id == account_id
    )


# -- journals and postings ------------------------------------------------------------


async def journal_key_taken(session: AsyncSession, idempotency_key: str) -> bool:
    found = await session.scalar(select(Journal.id).where(Journal.idempotency_key == idempotency_key))
    return found is not None


def _keyed_journal_insert(session: AsyncSession) -> Any:
    """Keyed journals' INSERT: a journal whose key exists is not inserted (RETURNING tells)."""
    upsert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    return (
        upsert(_JOURNALS)
        .on_conflict_do_nothing(index_elements=[_JOURNALS.c.idempotency_key])
        .returning(_JOURNALS.c.id)
    )


async def insert_keyed_journals(session: AsyncSession, rows: list[dict[str, Any]]) -> set[uuid.UUID]:
    """Insert journals that carry an idempotency key; answer the ids inserted (a taken key is skipped)."""
    return {row.id for row in await session.execute(_keyed_journal_insert(session), rows)}


async def insert_journals(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    await session.execute(insert(_JOURNALS), rows)


_INSERT_POSTINGS = insert(_POSTINGS).returning(_POSTINGS.c.id)
# SQLite has no identity for a column that is not the key: each row's seq is the highest so far
# plus its place in the list. The rows of one INSERT all see the MAX from before it (MAX+1, MAX+2,
# …; were a row to see those before it, the numbers would still rise, with gaps); a later page of
# a long list sees the earlier pages' rows. Writers queue on ``BEGIN IMMEDIATE``: no other
# transaction writes between the MAX and the INSERT (the unique index would refuse it if one did).
_LAST_SEQ = select(func.coalesce(func.max(_POSTINGS.c.seq), literal_column("0"))).scalar_subquery()
_INSERT_POSTINGS_SQLITE = (
    insert(_POSTINGS)
    .values(seq=_LAST_SEQ + bindparam("seq_place", type_=BigInteger))
    .returning(_POSTINGS.c.id)
)


async def insert_postings(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    """Insert posting rows, in order: the database gives each the next ``seq``."""
    # With RETURNING, SQLAlchemy sends these rows as one multi-row INSERT ("insertmanyvalues")
    # from a cached statement: one round trip, nothing compiled per journal.
    if session.get_bind().dialect.name == "sqlite":
        places = [{**row, "seq_place": place} for place, row in enumerate(rows, start=1)]
        await session.execute(_INSERT_POSTINGS_SQLITE, places)
    else:
        await session.execute(_INSERT_POSTINGS, rows)


async def get_journal(session: AsyncSession, journal_id: uuid.UUID) -> Journal | None:
    return await session.get(Journal, journal_id)


async def journal_postings(session: AsyncSession, journal_id: uuid.UUID) -> list[Posting]:
    """The journal's postings, in the order they were written."""
    query = select(Posting).where(Posting.journal_id == journal_id).order_by(Posting.seq)
    return list((await session.scalars(query)).all())


async def journal_by_key(session: AsyncSession, idempotency_key: str) -> Journal | None:
    found: Journal | None = await session.scalar(
        select(Journal).where(Journal.idempotency_key == idempotency_key)
    )
    return found


# -- statements -----------------------------------------------------------------------


async def balance_before(session: AsyncSession, account_id: uuid.UUID, moment: datetime | None) -> int:
    """The account's balance after its last posting (by ``seq``, the order they were written in)
    dated before ``moment`` (its latest posting when None); 0 if none."""
    query = select(Posting.balance_after).where(Posting.account_id == account_id)
    if moment is not None:
        query = query.where(Posting.created_at < moment)
    found = await session.scalar(query.order_by(Posting.seq.desc()).limit(1))
    return int(found or 0)


def statement_query(
    account_id: uuid.UUID, *, start: datetime | None, end: datetime | None, entry_type: str | None, chunk: int
) -> Any:
    """The account's postings dated in [start, end), in the order they were written (``seq``),
    with their journals, ``chunk`` a page."""
    query = (
        select(
            Posting.id,
            Posting.seq,
            Posting.created_at,
            Posting.amount,
            Posting.balance_after,
            Journal.reference,
            Journal.kind,
            Journal.description,
        )
        .join(Journal, Journal.id == Posting.journal_id)
        .where(Posting.account_id == account_id)
        .order_by(Posting.seq)
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


async def statement_page(session: AsyncSession, query: Any, after: int | None) -> list[Row[Any]]:
    """One page of ``statement_query``: the rows after the posting whose ``seq`` is ``after``, by keyset."""
    if after is not None:
        query = query.where(Posting.seq > after)
    return list((await session.execute(query)).all())


# -- holds --------------------------------------------------------------------------


async def add_holds(session: AsyncSession, account_id: uuid.UUID, rows: list[dict[str, Any]]) -> None:
    """Insert hold rows of one account and add their amounts to its ``held``."""
    await session.execute(
        update(_ACCOUNTS)
        .where(_ACCOUNTS.c.id == account_id)
        .values(held=_ACCOUNTS.c.held + sum(row["amount"] for row in rows))
    )
    await session.execute(insert(_HOLDS), rows)


async def end_active_holds(
    session: AsyncSession, hold_ids: list[uuid.UUID], status: HoldStatus, now: datetime
) -> dict[uuid.UUID, Hold]:
    """Give the active ones of ``hold_ids`` ``status``; answer them by id (the others are left)."""
    holds = _HOLDS.c
    rows = (
        await session.execute(
            update(_HOLDS)
            .where(holds.id.in_(hold_ids), holds.status == HoldStatus.ACTIVE)
            .values(status=status, finished_at=now)
            .returning(*_HOLDS.c)
        )
    ).all()
    return {row.id: Hold(**row._mapping) for row in rows}


async def hold_exists(session: AsyncSession, hold_id: uuid.UUID) -> bool:
    return await session.scalar(select(_HOLDS.c.id).where(_HOLDS.c.id == hold_id)) is not None


async def release_held(session: AsyncSession, released: dict[uuid.UUID, int]) -> None:
    """Take each account's released amount off its ``held``."""
    accounts = _ACCOUNTS.c
    held = accounts.held - per_account(released)
    await session.execute(update(_ACCOUNTS).where(accounts.id.in_(list(released))).values(held=held))


# -- verification -------------------------------------------------------------------


async def unbalanced_journals(session: AsyncSession) -> Iterable[Row[Any]]:
    """(journal_id, currency, sum) of every journal whose postings in a currency do not sum to zero."""
    return await session.execute(
        select(Posting.journal_id, Posting.currency, func.sum(Posting.amount))
        .group_by(Posting.journal_id, Posting.currency)
        .having(func.sum(Posting.amount) != 0)
    )


async def account_totals(session: AsyncSession) -> Iterable[Row[Any]]:
    """Each account, oldest first: id, kind, balance, held, allow_negative, the sum of its postings
    and the sum of its active holds."""
    sums = (
        select(Posting.account_id, func.sum(Posting.amount).label("total"))
        .group_by(Posting.account_id)
        .subquery()
    )
    holds = (
        select(Hold.account_id, func.sum(Hold.amount).label("total"))
        .where(Hold.status == HoldStatus.ACTIVE)
        .group_by(Hold.account_id)
        .subquery()
    )
    return await session.execute(
        select(
            LedgerAccount.id,
            LedgerAccount.kind,
            LedgerAccount.balance,
            LedgerAccount.held,
            LedgerAccount.allow_negative,
            func.coalesce(sums.c.total, 0),
            func.coalesce(holds.c.total, 0),
        )
        .outerjoin(sums, sums.c.account_id == LedgerAccount.id)
        .outerjoin(holds, holds.c.account_id == LedgerAccount.id)
        .order_by(LedgerAccount.created_at)
    )


async def keyed_totals(session: AsyncSession, keys: list[str]) -> dict[str, int]:
    """Per account kind, the sum of the postings of the journals with these idempotency keys."""
    totals: dict[str, int] = {}
    for start in range(0, len(keys), 5000):
        rows = await session.execute(
            select(LedgerAccount.kind, func.coalesce(func.sum(Posting.amount), 0))
            .join(Posting, Posting.account_id == LedgerAccount.id)
            .join(Journal, Journal.id == Posting.journal_id)
            .where(Journal.idempotency_key.in_(keys[start : start + 5000]))
            .group_by(LedgerAccount.kind)
        )
        for kind, amount in rows:
            totals[kind] = totals.get(kind, 0) + int(amount)
    return totals
