"""Migration 0019 (postings' seq) on a database with postings: they are numbered in the order
statements showed them (created_at, then id), the next posting is numbered after them, the
postings stay append-only (SQLite copies the table, which drops its triggers), and going back
down keeps every posting."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import MetaData, Table, func, insert, inspect, select, text
from sqlalchemy.exc import DBAPIError

from malipo.core.ids import new_id
from malipo.ledger import service as ledger
from malipo.ledger import statements
from malipo.ledger.models import AccountKind, Journal, LedgerAccount, Posting
from tests.fixtures.migrations import fresh_database, migrate_to

NOON = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
# ledger_postings as 0018 left it: no seq to give.
POSTINGS_0018 = Table(
    "ledger_postings",
    MetaData(),
    *(column._copy() for column in Posting.__table__.c if column.key != "seq"),
)


def _account(owner: str, kind: AccountKind, allow_negative: bool) -> dict[str, object]:
    return {
        "id": new_id(), "owner_key": owner, "client_id": None, "mode": "test", "kind": kind.value,
        "currency": "KES", "allow_negative": allow_negative, "balance": 0, "held": 0, "created_at": NOON,
    }  # fmt: skip


async def _old_books(url: str) -> tuple[uuid.UUID, uuid.UUID, list[tuple[datetime, uuid.UUID]]]:
    """At 0018: a funding account and a wallet, and three journals written in an order their dates
    do not follow. Answers the accounts and (created_at, posting id) of every posting written."""
    funding, wallet = (
        _account("system", AccountKind.SANDBOX_FUNDING, True),
        _account("customer:old", AccountKind.CUSTOMER_WALLET, False),
    )
    written: list[tuple[datetime, uuid.UUID]] = []
    journals, postings = [], []
    balances = {0: 100, 2: 400, 5: 600}  # the wallet's balance after each, in date order
    for hours, amount in ((2, 300), (0, 100), (5, 200)):  # written in an order the dates do not follow
        when = NOON + timedelta(hours=hours)
        journal_id = new_id()
        journals.append(
            {"id": journal_id, "client_id": None, "mode": "test", "reference": f"OLD{hours}",
             "kind": "top_up", "description": "old", "idempotency_key": None, "reverses_id": None,
             "details": {}, "created_at": when}
        )  # fmt: skip
        for account, leg, after in ((funding, -amount, -balances[hours]), (wallet, amount, balances[hours])):
            posting_id = new_id()
            postings.append(
                {"id": posting_id, "journal_id": journal_id, "account_id": account["id"], "amount": leg,
                 "currency": "KES", "balance_after": after, "created_at": when}
            )  # fmt: skip
            written.append((when, posting_id))
    funding["balance"], wallet["balance"] = -600, 600
    async with fresh_database(url) as db, db.transaction() as session:
        await session.execute(insert(LedgerAccount.__table__), [funding, wallet])
        await session.execute(insert(Journal.__table__), journals)
        await session.execute(insert(POSTINGS_0018), postings)
    return funding["id"], wallet["id"], written  # type: ignore[return-value]


async def _refusals(url: str) -> list[str]:
    """What the database says to an UPDATE and a DELETE of postings."""
    said = []
    async with fresh_database(url) as db:
        for statement in ("UPDATE ledger_postings SET amount = amount + 1", "DELETE FROM ledger_postings"):
            with pytest.raises(DBAPIError) as refused:
                async with db.transaction() as session:
                    await session.execute(text(statement))
            said.append("append-only" if "append-only" in str(refused.value) else str(refused.value))
    return said


async def _shape(url: str) -> tuple[set[str], set[str], int]:
    """ledger_postings' columns, its indexes and how many postings it holds."""
    async with fresh_database(url) as db, db.engine.connect() as conn:
        columns, indexes = await conn.run_sync(
            lambda c: (inspect(c).get_columns("ledger_postings"), inspect(c).get_indexes("ledger_postings"))
        )
        count = await conn.scalar(text("SELECT count(*) FROM ledger_postings"))
    return {c["name"] for c in columns}, {i["name"] for i in indexes if i["name"]}, int(count or 0)


async def test_0019_numbers_old_postings_by_date_and_new_ones_after_them(databases: object) -> None:
    url = databases.empty()  # type: ignore[attr-defined]
    await migrate_to(url, "0018")
    funding_id, wallet_id, written = await _old_books(url)

    await migrate_to(url, "head")
    async with fresh_database(url) as db, db.transaction() as session:
        numbered = (await session.execute(select(Posting.id, Posting.seq).order_by(Posting.seq))).all()
    assert [seq for _id, seq in numbered] == [1, 2, 3, 4, 5, 6]
    assert [posting_id for posting_id, _seq in numbered] == [posting for _when, posting in sorted(written)]
    assert await _refusals(url) == ["append-only", "append-only"]
    if databases.backend == "postgresql":  # type: ignore[attr-defined]
        async with fresh_database(url) as db, db.engine.connect() as conn:
            triggers = await conn.execute(
                text(
                    "SELECT tgname, tgenabled::text FROM pg_trigger "
                    "WHERE tgrelid = 'ledger_postings'::regclass AND NOT tgisinternal ORDER BY tgname"
                )
            )
            assert triggers.all() == [("ledger_postings_append_only", "O"), ("ledger_postings_balanced", "O")]

    async with fresh_database(url) as db:
        async with db.transaction() as session:  # dated before every other, written after them
            await ledger.post_journal(
                session, [ledger.Leg(wallet_id, -50, "KES"), ledger.Leg(funding_id, 50, "KES")],
                kind="transfer", description="new", mode="test", now=NOON - timedelta(days=1),
            )  # fmt: skip
        async with db.transaction() as session:
            new = await session.scalars(select(Posting.seq).where(Posting.seq > 6).order_by(Posting.seq))
            assert list(new) == [7, 8]
            query = statements.statement_query(wallet_id, start=None, end=None, entry_type=None, chunk=10)
            lines = await statements.statement_page(session, query, None)
            assert [(line.amount, line.balance_after) for line in lines] == [
                (100, 100), (300, 400), (200, 600), (-50, 550),
            ]  # fmt: skip
            assert await statements.balance_before(session, wallet_id, None) == 550
            assert await ledger.verify_ledger(session) == []
            assert await session.scalar(select(func.count()).select_from(Posting)) == 8

    await migrate_to(url, "0018", down=True)
    columns, indexes, count = await _shape(url)
    assert "seq" not in columns
    assert "ix_ledger_postings_account_id_created_at" in indexes
    assert "ix_ledger_postings_account_id_seq" not in indexes
    assert count == 8, "going down keeps every posting"
    assert await _refusals(url) == ["append-only", "append-only"]

    await migrate_to(url, "head")
    columns, indexes, count = await _shape(url)
    assert ("seq" in columns, "ix_ledger_postings_account_id_seq" in indexes, count) == (True, True, 8)
