"""The ledger: balanced journals only, guarded balances, holds settled or released once, books that verify."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select, text, update
from sqlalchemy.exc import DBAPIError

from malipo.core.clock import FrozenClock
from malipo.db import Database
from malipo.ledger import service as ledger
from malipo.ledger.models import AccountKind, Journal, LedgerAccount, Posting

ROOT = Path(__file__).resolve().parents[2]


async def _wallets(
    db: Database, clock: FrozenClock, count: int = 2
) -> tuple[LedgerAccount, list[LedgerAccount]]:
    async with db.transaction() as session:
        funding = await ledger.system_account(
            session, AccountKind.SANDBOX_FUNDING, "KES", "test", clock.now()
        )
        wallets = [
            await ledger.open_account(
                session,
                owner=f"customer:{i}",
                kind=AccountKind.CUSTOMER_WALLET,
                currency="KES",
                mode="test",
                now=clock.now(),
            )
            for i in range(count)
        ]
    return funding, wallets


async def _fund(
    db: Database, clock: FrozenClock, funding: LedgerAccount, wallet: LedgerAccount, amount: int
) -> None:
    async with db.transaction() as session:
        await ledger.post_journal(
            session,
            [ledger.Leg(funding.id, -amount, "KES"), ledger.Leg(wallet.id, amount, "KES")],
            kind="top_up",
            description="fund",
            mode="test",
            now=clock.now(),
        )


async def _balance(db: Database, account: LedgerAccount) -> tuple[int, int]:
    async with db.transaction() as session:
        return await ledger.balance_of(session, account.id)


async def _verify(db: Database) -> list[str]:
    async with db.transaction() as session:
        return await ledger.verify_ledger(session)


async def test_balanced_journal_moves_money_and_records_running_balances(
    db: Database, clock: FrozenClock
) -> None:
    funding, (alice, bob) = await _wallets(db, clock)
    await _fund(db, clock, funding, alice, 10_000)
    async with db.transaction() as session:
        posted = await ledger.post_journal(
            session,
            [ledger.Leg(alice.id, -2_500, "KES"), ledger.Leg(bob.id, 2_500, "KES")],
            kind="transfer",
            description="rent",
            mode="test",
            now=clock.now(),
        )
    assert await _balance(db, alice) == (7_500, 7_500)
    assert await _balance(db, bob) == (2_500, 2_500)
    assert await _balance(db, funding) == (-10_000, -10_000), "system accounts mirror money held outside"
    assert posted.balances == {
        alice.id: ledger.AccountBalance(7_500, 7_500),
        bob.id: ledger.AccountBalance(2_500, 2_500),
    }
    journal = posted.journal
    async with db.transaction() as session:
        postings = (await session.scalars(select(Posting).where(Posting.journal_id == journal.id))).all()
    assert sorted((p.amount, p.balance_after) for p in postings) == [(-2_500, 7_500), (2_500, 2_500)]
    assert len(journal.reference) == 10
    assert await _verify(db) == []


async def test_unbalanced_or_empty_journals_are_refused(db: Database, clock: FrozenClock) -> None:
    funding, (alice, _bob) = await _wallets(db, clock)
    for legs in (
        [ledger.Leg(funding.id, -100, "KES"), ledger.Leg(alice.id, 99, "KES")],
        [ledger.Leg(alice.id, 100, "KES")],
        [ledger.Leg(funding.id, 0, "KES"), ledger.Leg(alice.id, 0, "KES")],
        [ledger.Leg(funding.id, -100, "KES"), ledger.Leg(alice.id, 100, "USD")],
    ):
        with pytest.raises(ledger.UnbalancedJournal):
            async with db.transaction() as session:
                await ledger.post_journal(
                    session, legs, kind="x", description="x", mode="test", now=clock.now()
                )
    assert await _balance(db, alice) == (0, 0)
    async with db.transaction() as session:
        assert (await session.scalars(select(Journal))).all() == []


async def test_a_debit_never_takes_a_wallet_below_zero_and_changes_nothing(
    db: Database, clock: FrozenClock
) -> None:
    funding, (alice, bob) = await _wallets(db, clock)
    await _fund(db, clock, funding, alice, 1_000)
    with pytest.raises(ledger.InsufficientFunds, match=r"KES 10\.00 available"):
        async with db.transaction() as session:
            await ledger.post_journal(
                session,
                [ledger.Leg(bob.id, 1_001, "KES"), ledger.Leg(alice.id, -1_001, "KES")],
                kind="transfer",
                description="too much",
                mode="test",
                now=clock.now(),
            )
    assert await _balance(db, alice) == (1_000, 1_000)
    assert await _balance(db, bob) == (0, 0), "the credit applied first was rolled back with the journal"
    assert await _verify(db) == []


async def test_holds_reserve_funds_and_finish_exactly_once(db: Database, clock: FrozenClock) -> None:
    funding, (alice, bob) = await _wallets(db, clock)
    await _fund(db, clock, funding, alice, 5_000)
    async with db.transaction() as session:
        hold = await ledger.place_hold(session, alice.id, 3_000, reference="payout-1", now=clock.now())
    assert await _balance(db, alice) == (5_000, 2_000)
    with pytest.raises(ledger.InsufficientFunds):
        async with db.transaction() as session:
            await ledger.place_hold(session, alice.id, 2_001, reference="payout-2", now=clock.now())
    with pytest.raises(ledger.InsufficientFunds):  # held funds cannot be spent elsewhere
        async with db.transaction() as session:
            await ledger.post_journal(
                session,
                [ledger.Leg(alice.id, -2_001, "KES"), ledger.Leg(bob.id, 2_001, "KES")],
                kind="transfer",
                description="x",
                mode="test",
                now=clock.now(),
            )
    async with db.transaction() as session:
        await ledger.settle_hold(
            session,
            hold.id,
            [ledger.Leg(bob.id, 3_000, "KES")],
            kind="payout",
            description="paid",
            mode="test",
            now=clock.now(),
        )
    assert await _balance(db, alice) == (2_000, 2_000)
    assert await _balance(db, bob) == (3_000, 3_000)
    for finish in (
        lambda s: ledger.settle_hold(
            s,
            hold.id,
            [ledger.Leg(bob.id, 3_000, "KES")],
            kind="payout",
            description="again",
            mode="test",
            now=clock.now(),
        ),
        lambda s: ledger.release_hold(s, hold.id, now=clock.now()),
    ):
        with pytest.raises(ledger.HoldNotActive):
            async with db.transaction() as session:
                await finish(session)
    async with db.transaction() as session:
        second = await ledger.place_hold(session, alice.id, 500, reference="payout-3", now=clock.now())
        await ledger.release_hold(session, second.id, now=clock.now())
    with pytest.raises(ledger.HoldNotActive):
        async with db.transaction() as session:
            await ledger.release_hold(session, second.id, now=clock.now())
    assert await _balance(db, alice) == (2_000, 2_000)
    assert await _verify(db) == []


async def test_reversal_undoes_a_journal_once(db: Database, clock: FrozenClock) -> None:
    funding, (alice, _bob) = await _wallets(db, clock)
    await _fund(db, clock, funding, alice, 700)
    async with db.transaction() as session:
        original = await session.scalar(select(Journal))
        assert original is not None
        await ledger.reverse_journal(session, original.id, description="refund", now=clock.now())
    assert await _balance(db, alice) == (0, 0)
    with pytest.raises(ledger.DuplicateJournal):
        async with db.transaction() as session:
            await ledger.reverse_journal(session, original.id, description="twice", now=clock.now())
    assert await _verify(db) == []


async def test_journals_and_postings_are_append_only_in_the_database(
    db: Database, clock: FrozenClock
) -> None:
    funding, (alice, _bob) = await _wallets(db, clock)
    await _fund(db, clock, funding, alice, 100)
    for statement in (
        "UPDATE ledger_postings SET amount = amount + 1",
        "DELETE FROM ledger_postings",
        "UPDATE ledger_journals SET description = 'edited'",
        "DELETE FROM ledger_journals",
    ):
        with pytest.raises(DBAPIError, match="append-only"):
            async with db.transaction() as session:
                await session.execute(text(statement))
    assert await _verify(db) == []


async def test_verify_finds_tampered_balances_and_the_cli_says_so(
    db: Database, db_url: str, clock: FrozenClock, tmp_path: Path
) -> None:
    funding, (alice, _bob) = await _wallets(db, clock)
    await _fund(db, clock, funding, alice, 300)
    env = {**os.environ, "MALIPO_DATABASE_URL": db_url, "MALIPO_VAR_DIR": str(tmp_path / "var")}
    cmd = [sys.executable, "-m", "malipo.cli", "ledger", "verify"]
    ok = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=ROOT, timeout=60, check=False)
    assert ok.returncode == 0, ok.stderr
    assert "ledger OK" in ok.stdout
    async with db.transaction() as session:
        await session.execute(
            update(LedgerAccount)
            .where(LedgerAccount.id == alice.id)
            .values(balance=LedgerAccount.balance + 1)
        )
    problems = await _verify(db)
    assert problems == [f"account {alice.id} (customer_wallet) balance 301 != sum of postings 300"]
    bad = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=ROOT, timeout=60, check=False)
    assert bad.returncode == 1
    assert problems[0] in bad.stderr


@pytest.mark.postgres
async def test_postgres_refuses_an_unbalanced_journal_at_commit(pg_url: str) -> None:
    db = Database.from_url(pg_url)
    clock = FrozenClock()
    try:
        _funding, (alice, _bob) = await _wallets(db, clock)
        with pytest.raises(DBAPIError, match="does not balance"):
            async with db.transaction() as session:  # bypasses the service's own check
                journal_id = (
                    await session.execute(
                        text(
                            "INSERT INTO ledger_journals (id, mode, reference, kind, description, details, "
                            "created_at) VALUES (gen_random_uuid(), 'test', 'R', 'x', 'x', '{}', now()) "
                            "RETURNING id"
                        )
                    )
                ).scalar()
                await session.execute(
                    text(
                        "INSERT INTO ledger_postings (id, journal_id, account_id, amount, currency, "
                        "balance_after, created_at) "
                        "VALUES (gen_random_uuid(), :j, :a, 100, 'KES', 100, now())"
                    ),
                    {"j": journal_id, "a": alice.id},
                )
        assert await _verify(db) == []
    finally:
        await db.dispose()


@pytest.mark.postgres
async def test_concurrent_debits_of_one_wallet_never_overdraw(pg_url: str) -> None:
    """40 concurrent debits of 100 from a wallet holding 1,000: exactly 10 succeed."""
    db = Database.from_url(pg_url)
    clock = FrozenClock()
    try:
        funding, wallets = await _wallets(db, clock, count=41)
        source, sinks = wallets[0], wallets[1:]
        await _fund(db, clock, funding, source, 1_000)

        async def debit(sink: LedgerAccount) -> bool:
            try:
                async with db.transaction() as session:
                    await ledger.post_journal(
                        session,
                        [ledger.Leg(source.id, -100, "KES"), ledger.Leg(sink.id, 100, "KES")],
                        kind="transfer",
                        description="race",
                        mode="test",
                        now=clock.now(),
                    )
            except ledger.InsufficientFunds:
                return False
            return True

        results = await asyncio.gather(*(debit(sink) for sink in sinks))
        assert results.count(True) == 10
        assert await _balance(db, source) == (0, 0)
        assert await _verify(db) == []
    finally:
        await db.dispose()


async def test_a_refused_journal_leaves_nothing_even_if_the_caller_carries_on(
    db: Database, clock: FrozenClock
) -> None:
    """A refused journal writes nothing, even when the credited account sorts before the debited one."""
    funding, (alice, bob) = await _wallets(db, clock)
    assert alice.id < bob.id
    await _fund(db, clock, funding, alice, 1_000)
    async with db.transaction() as session:
        with pytest.raises(ledger.InsufficientFunds):
            await ledger.post_journal(
                session,
                [ledger.Leg(bob.id, -5_000, "KES"), ledger.Leg(alice.id, 5_000, "KES")],
                kind="transfer",
                description="bob has nothing",
                mode="test",
                now=clock.now(),
            )
        # the caller goes on and commits what else it did
        await ledger.post_journal(
            session,
            [ledger.Leg(alice.id, -100, "KES"), ledger.Leg(bob.id, 100, "KES")],
            kind="transfer",
            description="fits",
            mode="test",
            now=clock.now(),
        )
    assert await _balance(db, alice) == (900, 900)
    assert await _balance(db, bob) == (100, 100)
    assert await _verify(db) == []


async def test_journals_posted_together_are_checked_one_after_the_other_and_written_all_or_none(
    db: Database, clock: FrozenClock
) -> None:
    funding, (alice, bob) = await _wallets(db, clock)
    await _fund(db, clock, funding, alice, 100)

    def transfer(amount: int, source: LedgerAccount, target: LedgerAccount) -> ledger.Entry:
        legs = [ledger.Leg(source.id, -amount, "KES"), ledger.Leg(target.id, amount, "KES")]
        return ledger.Entry(legs, kind="transfer", description="t", mode="test")

    # 80 then 30 from alice's 100: the second is refused on what the first leaves, so neither is written.
    with pytest.raises(ledger.InsufficientFunds, match=r"KES 0\.20 available"):
        async with db.transaction() as session:
            await ledger.post_journals(
                session, [transfer(80, alice, bob), transfer(30, alice, bob)], now=clock.now()
            )
    assert await _balance(db, alice) == (100, 100)
    assert await _balance(db, bob) == (0, 0)

    # Money passed on within the batch counts: bob spends what alice gave him just before.
    async with db.transaction() as session:
        posted = await ledger.post_journals(
            session,
            [transfer(80, alice, bob), transfer(50, bob, alice), transfer(30, bob, alice)],
            now=clock.now(),
        )
    assert [p.balances[bob.id].balance for p in posted] == [80, 30, 0]
    assert await _balance(db, alice) == (100, 100)
    assert await _balance(db, bob) == (0, 0)
    async with db.transaction() as session:
        postings = (await session.scalars(select(Posting).where(Posting.account_id == bob.id))).all()
    assert sorted(p.balance_after for p in postings) == [0, 30, 80]
    assert await _verify(db) == []


async def test_holds_placed_together_take_what_is_left_in_order(db: Database, clock: FrozenClock) -> None:
    funding, (alice, _bob) = await _wallets(db, clock)
    await _fund(db, clock, funding, alice, 100)
    wanted = [ledger.HoldRequest(60, "a"), ledger.HoldRequest(50, "b"), ledger.HoldRequest(40, "c")]
    async with db.transaction() as session:
        placed = await ledger.place_holds(session, alice.id, wanted, now=clock.now())
    assert [type(p).__name__ for p in placed] == ["Hold", "InsufficientFunds", "Hold"]
    assert "KES 0.40 available" in str(placed[1])
    assert await _balance(db, alice) == (100, 0)
    async with db.transaction() as session:
        released = await ledger.release_holds(session, [placed[0].id, placed[2].id], now=clock.now())  # type: ignore[union-attr]
    assert [h.amount for h in released] == [60, 40]
    assert await _balance(db, alice) == (100, 100)
    with pytest.raises(ledger.HoldNotActive):  # all or none: one already released refuses the lot
        async with db.transaction() as session:
            await ledger.release_holds(session, [placed[0].id], now=clock.now())  # type: ignore[union-attr]
    assert await _verify(db) == []
