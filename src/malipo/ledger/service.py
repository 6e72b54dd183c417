"""Moving money: balanced journals, holds, and the proof that the books add up.

What callers can rely on:
- ``post_journal`` writes a journal whose postings sum to zero per currency, or
  raises and writes nothing. It runs in the caller's transaction (services
  flush, never commit), with the state change and outbox jobs that cause it.
- Balances change by guarded updates in a fixed account order: concurrent
  debits of one account serialise on its row (PostgreSQL) or on SQLite's single
  writer, and an account that may not go negative never has balance - held < 0.
- A hold reserves funds; it is settled or released exactly once.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from malipo.core.errors import Conflict, MalipoError, NotFound
from malipo.core.ids import new_id, new_reference
from malipo.core.money import Money
from malipo.ledger.models import SYSTEM_KINDS, AccountKind, Hold, HoldStatus, Journal, LedgerAccount, Posting


class UnbalancedJournal(MalipoError):
    status = 500
    code = "unbalanced_journal"
    title = "A journal must balance"


class InsufficientFunds(MalipoError):
    status = 422
    code = "insufficient_funds"
    title = "Insufficient funds"


class HoldNotActive(Conflict):
    code = "hold_not_active"
    title = "The hold is already settled or released"


class DuplicateJournal(Conflict):
    code = "duplicate_journal"
    title = "This movement was already recorded"


@dataclass(frozen=True, slots=True)
class Leg:
    """One side of a movement: ``amount`` (signed minor units) added to ``account_id``."""

    account_id: uuid.UUID
    amount: int
    currency: str


def owner_key(*, client_id: uuid.UUID | None = None, customer_id: uuid.UUID | None = None) -> str:
    if customer_id is not None:
        return f"customer:{customer_id}"
    if client_id is not None:
        return f"client:{client_id}"
    return "system"


async def open_account(
    session: AsyncSession,
    *,
    owner: str,
    kind: AccountKind,
    currency: str,
    mode: str,
    now: datetime,
    client_id: uuid.UUID | None = None,
    allow_negative: bool = False,
) -> LedgerAccount:
    """The account of ``owner`` for ``kind``/``currency``/``mode``, created if missing (safe to race)."""
    wanted = select(LedgerAccount).where(
        LedgerAccount.owner_key == owner,
        LedgerAccount.kind == kind,
        LedgerAccount.currency == currency,
        LedgerAccount.mode == mode,
    )
    found = await session.scalar(wanted)
    if found is not None:
        return found
    account = LedgerAccount(
        id=new_id(), owner_key=owner, client_id=client_id, mode=mode, kind=kind, currency=currency,
        allow_negative=allow_negative, balance=0, held=0, created_at=now,
    )  # fmt: skip
    try:
        async with session.begin_nested():
            session.add(account)
            await session.flush()
    except IntegrityError:  # opened by a concurrent request: use that one
        found = await session.scalar(wanted)
        assert found is not None
        return found
    return account


async def system_account(
    session: AsyncSession, kind: AccountKind, currency: str, mode: str, now: datetime
) -> LedgerAccount:
    """One of the gateway's own accounts. They may go negative: they mirror money held outside."""
    if kind not in SYSTEM_KINDS:
        raise ValueError(f"{kind} is not a system account kind")
    return await open_account(
        session, owner="system", kind=kind, currency=currency, mode=mode, now=now, allow_negative=True
    )


async def ensure_chart(
    session: AsyncSession, currency: str, mode: str, now: datetime
) -> dict[AccountKind, LedgerAccount]:
    return {kind: await system_account(session, kind, currency, mode, now) for kind in SYSTEM_KINDS}


async def open_merchant_wallets(
    session: AsyncSession, client_id: uuid.UUID, currency: str, now: datetime
) -> dict[tuple[str, AccountKind], LedgerAccount]:
    """A merchant's payments and service wallets, live and sandbox, and the chart they trade with."""
    opened = {}
    for mode in ("live", "test"):
        await ensure_chart(session, currency, mode, now)
        for kind in (AccountKind.PAYMENTS_WALLET, AccountKind.SERVICE_WALLET):
            opened[(mode, kind)] = await open_account(
                session,
                owner=owner_key(client_id=client_id),
                kind=kind,
                currency=currency,
                mode=mode,
                client_id=client_id,
                now=now,
            )
    return opened


async def post_journal(
    session: AsyncSession,
    legs: list[Leg],
    *,
    kind: str,
    description: str,
    mode: str,
    now: datetime,
    client_id: uuid.UUID | None = None,
    idempotency_key: str | None = None,
    details: dict[str, Any] | None = None,
    reverses_id: uuid.UUID | None = None,
) -> Journal:
    """Write one balanced journal and apply its postings to the balances."""
    _check_balanced(legs)
    journal_id = new_id()
    journal = {
        "id": journal_id,
        "client_id": client_id,
        "mode": mode,
        "reference": new_reference(),
        "kind": kind,
        "description": description[:300],
        "idempotency_key": idempotency_key,
        "reverses_id": reverses_id,
        "details": details or {},
        "created_at": now,
    }
    # One savepoint around the whole journal: a duplicate key or a refused debit leaves nothing
    # behind, even in a caller that catches the error and carries on in the same transaction.
    try:
        async with session.begin_nested():
            await session.execute(insert(Journal), [journal])
            await _apply_postings(session, journal_id, legs, now)
    except IntegrityError:
        if idempotency_key is None:
            raise
        raise DuplicateJournal(f"a journal with key {idempotency_key!r} already exists") from None
    return Journal(**journal)


async def _apply_postings(
    session: AsyncSession, journal_id: uuid.UUID, legs: list[Leg], now: datetime
) -> None:
    balances: dict[uuid.UUID, int] = {}
    # A fixed order, so two movements over the same accounts never deadlock.
    for account_id, amount in sorted(_net_by_account(legs).items()):
        balances[account_id] = await _apply(session, account_id, amount)
    running = dict(balances)
    rows = []
    # balance_after: each account's balance after its own postings in this journal, in order.
    for leg in reversed(legs):
        rows.append(
            {
                "id": new_id(),
                "journal_id": journal_id,
                "account_id": leg.account_id,
                "amount": leg.amount,
                "currency": leg.currency,
                "balance_after": running[leg.account_id],
                "created_at": now,
            }
        )
        running[leg.account_id] -= leg.amount
    rows.reverse()
    await session.execute(insert(Posting), rows)


def _check_balanced(legs: list[Leg]) -> None:
    if len(legs) < 2:
        raise UnbalancedJournal("a journal needs at least two postings")
    totals: dict[str, int] = defaultdict(int)
    for leg in legs:
        if leg.amount == 0:
            raise UnbalancedJournal("a posting of zero moves nothing")
        totals[leg.currency] += leg.amount
    unbalanced = {currency: total for currency, total in totals.items() if total != 0}
    if unbalanced:
        raise UnbalancedJournal(f"postings do not sum to zero: {unbalanced}")


def _net_by_account(legs: list[Leg]) -> dict[uuid.UUID, int]:
    net: dict[uuid.UUID, int] = defaultdict(int)
    for leg in legs:
        net[leg.account_id] += leg.amount
    return net


async def _apply(session: AsyncSession, account_id: uuid.UUID, amount: int) -> int:
    """Add ``amount`` to the balance; a debit never takes a guarded account's available below zero."""
    conditions = [LedgerAccount.id == account_id]
    if amount < 0:
        conditions.append(
            LedgerAccount.allow_negative | (LedgerAccount.balance + amount - LedgerAccount.held >= 0)
        )
    new_balance = await session.scalar(
        update(LedgerAccount)
        .where(*conditions)
        .values(balance=LedgerAccount.balance + amount)
        .returning(LedgerAccount.balance)
        .execution_options(synchronize_session=False)
    )
    if new_balance is None:
        account = await session.get(LedgerAccount, account_id)
        if account is None:
            raise NotFound(f"no ledger account {account_id}")
        available = Money(account.balance - account.held, account.currency)
        raise InsufficientFunds(
            f"insufficient funds: {available} available, {Money(-amount, account.currency)} needed",
            available=available.format(),
        )
    return int(new_balance)


async def reverse_journal(
    session: AsyncSession, journal_id: uuid.UUID, *, description: str, now: datetime
) -> Journal:
    """A journal undoing ``journal_id`` (journals are never edited or deleted)."""
    original = await session.get(Journal, journal_id)
    if original is None:
        raise NotFound(f"no journal {journal_id}")
    postings = (await session.scalars(select(Posting).where(Posting.journal_id == journal_id))).all()
    return await post_journal(
        session,
        [Leg(p.account_id, -p.amount, p.currency) for p in postings],
        kind="reversal",
        description=description,
        mode=original.mode,
        client_id=original.client_id,
        idempotency_key=f"reversal:{journal_id}",
        reverses_id=journal_id,
        now=now,
    )


# -- holds --------------------------------------------------------------------------


async def place_hold(
    session: AsyncSession, account_id: uuid.UUID, amount: int, *, reference: str, now: datetime
) -> Hold:
    """Reserve ``amount`` of the account's available funds."""
    if amount <= 0:
        raise ValueError("a hold reserves a positive amount")
    guard = LedgerAccount.allow_negative | (LedgerAccount.balance - LedgerAccount.held - amount >= 0)
    account = await session.scalar(
        update(LedgerAccount)
        .where(LedgerAccount.id == account_id, guard)
        .values(held=LedgerAccount.held + amount)
        .returning(LedgerAccount)
        .execution_options(synchronize_session=False)
    )
    if account is None:
        current = await session.get(LedgerAccount, account_id)
        if current is None:
            raise NotFound(f"no ledger account {account_id}")
        raise InsufficientFunds(
            f"insufficient funds: {Money(current.balance - current.held, current.currency)} available",
            available=Money(current.balance - current.held, current.currency).format(),
        )
    hold = Hold(
        id=new_id(),
        account_id=account_id,
        amount=amount,
        currency=account.currency,
        status=HoldStatus.ACTIVE,
        reference=reference,
        created_at=now,
    )
    session.add(hold)
    await session.flush()
    return hold


async def _finish_hold(session: AsyncSession, hold_id: uuid.UUID, status: HoldStatus, now: datetime) -> Hold:
    hold = await session.scalar(
        update(Hold)
        .where(Hold.id == hold_id, Hold.status == HoldStatus.ACTIVE)
        .values(status=status, finished_at=now)
        .returning(Hold)
        .execution_options(synchronize_session=False)
    )
    if hold is None:
        if await session.get(Hold, hold_id) is None:
            raise NotFound(f"no hold {hold_id}")
        raise HoldNotActive(f"hold {hold_id} is already settled or released")
    await session.execute(
        update(LedgerAccount)
        .where(LedgerAccount.id == hold.account_id)
        .values(held=LedgerAccount.held - hold.amount)
        .execution_options(synchronize_session=False)
    )
    return hold


async def release_hold(session: AsyncSession, hold_id: uuid.UUID, *, now: datetime) -> Hold:
    """Give the reserved funds back to the account's available balance."""
    return await _finish_hold(session, hold_id, HoldStatus.RELEASED, now)


async def settle_hold(
    session: AsyncSession,
    hold_id: uuid.UUID,
    counter_legs: list[Leg],
    *,
    kind: str,
    description: str,
    mode: str,
    now: datetime,
    client_id: uuid.UUID | None = None,
    idempotency_key: str | None = None,
) -> Journal:
    """Spend the hold: debit its account by the held amount, balanced by ``counter_legs``."""
    hold = await _finish_hold(session, hold_id, HoldStatus.SETTLED, now)
    return await post_journal(
        session,
        [Leg(hold.account_id, -hold.amount, hold.currency), *counter_legs],
        kind=kind,
        description=description,
        mode=mode,
        now=now,
        client_id=client_id,
        idempotency_key=idempotency_key,
        details={"hold_id": str(hold.id)},
    )


# -- verification -------------------------------------------------------------------


async def verify_ledger(session: AsyncSession) -> list[str]:
    """Every discrepancy in the books, first found first; an empty list means they add up.

    Checks that every journal balances per currency, every account's balance equals
    the sum of its postings, its held amount equals its active holds, and no guarded
    account is below zero.
    """
    problems: list[str] = []
    unbalanced = await session.execute(
        select(Posting.journal_id, Posting.currency, func.sum(Posting.amount))
        .group_by(Posting.journal_id, Posting.currency)
        .having(func.sum(Posting.amount) != 0)
    )
    problems += [f"journal {j} does not balance in {c}: off by {s}" for j, c, s in unbalanced]
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
    rows = await session.execute(
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
    for account_id, kind, balance, held, allow_negative, posted, active in rows:
        if balance != posted:
            problems.append(f"account {account_id} ({kind}) balance {balance} != sum of postings {posted}")
        if held != active:
            problems.append(f"account {account_id} ({kind}) held {held} != active holds {active}")
        if not allow_negative and balance - held < 0:
            problems.append(f"account {account_id} ({kind}) is below zero: available {balance - held}")
    return problems


async def balance_of(session: AsyncSession, account_id: uuid.UUID) -> tuple[int, int]:
    """(balance, available) of an account."""
    row = (
        await session.execute(
            select(LedgerAccount.balance, LedgerAccount.balance - LedgerAccount.held).where(
                LedgerAccount.id == account_id
            )
        )
    ).first()
    if row is None:
        raise NotFound(f"no ledger account {account_id}")
    return int(row[0]), int(row[1])
