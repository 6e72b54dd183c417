"""Postings come out in the order they were written, whatever the writer's clock said: the
database numbers them (``seq``), and statements and an account's latest posting follow it."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from malipo.core.clock import FrozenClock
from malipo.db import Database
from malipo.ledger import service as ledger
from malipo.ledger import statements
from malipo.ledger.models import AccountKind, LedgerAccount, Posting

NOON = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


async def _accounts(db: Database, clock: FrozenClock) -> tuple[LedgerAccount, LedgerAccount, LedgerAccount]:
    async with db.transaction() as session:
        funding = await ledger.system_account(
            session, AccountKind.SANDBOX_FUNDING, "KES", "test", clock.now()
        )
        alice, bob = [
            await ledger.open_account(
                session,
                owner=f"customer:{name}",
                kind=AccountKind.CUSTOMER_WALLET,
                currency="KES",
                mode="test",
                now=clock.now(),
            )
            for name in ("alice", "bob")
        ]
    return funding, alice, bob


async def _move(db: Database, clock: FrozenClock, source: uuid.UUID, sink: uuid.UUID, amount: int) -> None:
    async with db.transaction() as session:
        await ledger.post_journal(
            session, [ledger.Leg(source, -amount, "KES"), ledger.Leg(sink, amount, "KES")],
            kind="transfer", description=f"{amount}", mode="test", now=clock.now(),
        )  # fmt: skip


async def _statement(db: Database, account_id: uuid.UUID, chunk: int) -> list[tuple[int, int]]:
    """(amount, balance_after) of every posting of the account, read ``chunk`` at a time."""
    query = statements.statement_query(account_id, start=None, end=None, entry_type=None, chunk=chunk)
    lines: list[tuple[int, int]] = []
    after: int | None = None
    while True:
        async with db.transaction() as session:
            rows = await statements.statement_page(session, query, after)
        lines += [(row.amount, row.balance_after) for row in rows]
        if len(rows) < chunk:
            return lines
        after = rows[-1].seq


async def test_a_statement_keeps_the_order_postings_were_written_in_when_the_clock_goes_back(
    db: Database,
) -> None:
    clock = FrozenClock(NOON)
    funding, alice, bob = await _accounts(db, clock)
    await _move(db, clock, funding.id, alice.id, 10_000)
    clock.set(NOON - timedelta(hours=1))  # the clock is put back between two movements
    await _move(db, clock, alice.id, bob.id, 2_500)
    clock.set(NOON - timedelta(days=1))  # and further back
    await _move(db, clock, bob.id, alice.id, 1_000)
    clock.set(NOON - timedelta(hours=2))  # forward again, still before the first two
    await _move(db, clock, alice.id, bob.id, 500)

    written = {
        alice.id: [(10_000, 10_000), (-2_500, 7_500), (1_000, 8_500), (-500, 8_000)],
        bob.id: [(2_500, 2_500), (-1_000, 1_500), (500, 2_000)],
    }
    for account_id, lines in written.items():
        for chunk in (1, 2, 3, 50):
            assert await _statement(db, account_id, chunk) == lines, f"chunk {chunk}"
        running = 0
        for amount, balance_after in lines:  # the running balances add up in this order
            running += amount
            assert balance_after == running
        async with db.transaction() as session:
            # The latest posting is the last one written, not the one with the latest date.
            assert await statements.balance_before(session, account_id, None) == lines[-1][1]
            assert await ledger.balance_of(session, account_id) == (lines[-1][1], lines[-1][1])
    async with db.transaction() as session:
        assert await ledger.verify_ledger(session) == []


async def test_postings_of_one_statement_are_numbered_in_the_order_written_across_insert_pages(
    db: Database,
) -> None:
    """1,200 postings in one call: past one page of SQLite's multi-row INSERT (1,000 rows), and
    every journal's legs, in order, after the journal before it."""
    clock = FrozenClock(NOON)
    funding, alice, bob = await _accounts(db, clock)
    await _move(db, clock, funding.id, alice.id, 1_000_000)
    entries = [
        ledger.Entry([ledger.Leg(alice.id, -(n + 1), "KES"), ledger.Leg(bob.id, n + 1, "KES")], "transfer",
                     f"t{n}", "test")
        for n in range(600)
    ]  # fmt: skip
    async with db.transaction() as session:
        last = await session.scalar(select(func.max(Posting.seq)))
        posted = await ledger.post_journals(session, entries, now=clock.now())
    written = [(p.journal.id, leg.amount) for p, e in zip(posted, entries, strict=True) for leg in e.legs]
    async with db.transaction() as session:
        rows = (
            await session.execute(
                select(Posting.seq, Posting.journal_id, Posting.amount)
                .where(Posting.seq > last)
                .order_by(Posting.seq)
            )
        ).all()
    assert [(row.journal_id, row.amount) for row in rows] == written
    assert len({row.seq for row in rows}) == len(written)
    assert (await _statement(db, alice.id, 250))[-1] == (-600, 1_000_000 - 600 * 601 // 2)
