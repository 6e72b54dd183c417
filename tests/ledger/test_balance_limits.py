"""Every balance has a ceiling, checked before any update: past it a movement is refused naming
``amount`` and writes nothing, so no balance, held amount or sum ever passes a 64-bit integer."""

from __future__ import annotations

import pytest

from malipo.core.clock import FrozenClock
from malipo.db import Database
from malipo.ledger import service as ledger
from malipo.ledger.models import AccountKind, Journal, LedgerAccount
from tests.ledger.test_ledger import _balance, _fund, _wallets


async def _journals(db: Database) -> int:
    async with db.transaction() as session:
        return len((await session.scalars(Journal.__table__.select())).all())


async def _move(
    db: Database, clock: FrozenClock, source: LedgerAccount, target: LedgerAccount, amount: int
) -> None:
    async with db.transaction() as session:
        await ledger.post_journal(
            session, [ledger.Leg(source.id, -amount, "KES"), ledger.Leg(target.id, amount, "KES")],
            kind="test", description="move", mode="test", now=clock.now(),
        )  # fmt: skip


async def test_a_wallet_takes_up_to_its_ceiling_and_not_a_cent_more(db: Database, clock: FrozenClock) -> None:
    funding, (wallet, _other) = await _wallets(db, clock)
    await _fund(db, clock, funding, wallet, ledger.MAX_BALANCE)
    journals = await _journals(db)
    with pytest.raises(ledger.BalanceLimit) as refused:
        await _fund(db, clock, funding, wallet, 1)
    assert [e.field for e in refused.value.errors] == ["amount"]
    assert refused.value.status == 422
    assert await _balance(db, wallet) == (ledger.MAX_BALANCE, ledger.MAX_BALANCE)
    assert await _journals(db) == journals
    async with db.transaction() as session:
        assert await ledger.verify_ledger(session) == []


async def test_an_account_that_may_go_negative_stops_at_its_own_limit(
    db: Database, clock: FrozenClock
) -> None:
    funding, (wallet, other) = await _wallets(db, clock)
    async with db.transaction() as session:
        suspense = await ledger.system_account(session, AccountKind.SUSPENSE, "KES", "test", clock.now())
    await _move(db, clock, funding, suspense, ledger.MAX_OPEN_BALANCE - 10)
    with pytest.raises(ledger.BalanceLimit):
        await _fund(db, clock, funding, wallet, 11)  # the funding account would pass -MAX_OPEN_BALANCE
    await _fund(db, clock, funding, wallet, 10)  # exactly at the limit is allowed
    assert await _balance(db, funding) == (-ledger.MAX_OPEN_BALANCE, -ledger.MAX_OPEN_BALANCE)
    assert await _balance(db, other) == (0, 0)


@pytest.mark.parametrize("amount", [ledger.MAX_OPEN_BALANCE + 1, 2**63 - 1, 2**63, 2**70])
async def test_a_posting_larger_than_any_balance_is_refused_before_the_database(
    db: Database, clock: FrozenClock, amount: int
) -> None:
    # 2**63 and more would not even fit the column: refused in Python, never a database error.
    funding, (wallet, _other) = await _wallets(db, clock)
    with pytest.raises(ledger.BalanceLimit):
        await _fund(db, clock, funding, wallet, amount)
    assert await _balance(db, wallet) == (0, 0)
    assert await _journals(db) == 0
