"""Many clients moving money between the same wallets at once, over HTTP, on PostgreSQL.

50 concurrent clients make 2,000 random transfers among 10 wallets: no wallet
goes below zero, the total is conserved, the ledger verifies, and every 2xx
reply corresponds to exactly one journal.
"""

from __future__ import annotations

import asyncio
import random
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from malipo.config import Settings
from malipo.db import Database
from malipo.ledger import service as ledger
from malipo.ledger.models import AccountKind, Journal, LedgerAccount
from tests.customers.helpers import serve

WALLETS = 10
CLIENTS = 50
TRANSFERS = 2_000
START = Decimal("500.00")


@pytest.mark.postgres
@pytest.mark.slow
def test_concurrent_transfers_conserve_money(pg_url: str, tmp_path: Path, live_server: Any) -> None:
    settings = Settings(
        env="test", var_dir=tmp_path / "var", database_url=pg_url, inprocess_worker=False, db_pool_size=20
    ).require_secrets()
    world = serve(settings, live_server)
    customers = [world.customer(world.a.test_key) for _ in range(WALLETS)]
    for customer in customers:
        assert world.top_up(customer, str(START)).status_code == 201

    rng = random.Random(20261123)
    plan = []
    for _ in range(TRANSFERS):
        sender, recipient = rng.sample(range(WALLETS), 2)
        plan.append((sender, recipient, f"{rng.randint(1, 20_000) / 100:.2f}"))

    async def run() -> list[tuple[int, str | None]]:
        queue: asyncio.Queue[tuple[int, int, str]] = asyncio.Queue()
        for item in plan:
            queue.put_nowait(item)
        results: list[tuple[int, str | None]] = []

        async def client_loop() -> None:
            async with httpx.AsyncClient(base_url=world.url, timeout=60) as client:
                while not queue.empty():
                    sender, recipient, amount = queue.get_nowait()
                    reply = await client.post(
                        "/api/v1/wallet/transfer",
                        headers=customers[sender].headers,
                        json={
                            "recipientCustomerId": str(customers[recipient].id),
                            "amount": amount,
                            "description": "load",
                        },
                    )
                    body = reply.json()
                    results.append((reply.status_code, body.get("reference") or body.get("code")))

        await asyncio.gather(*(client_loop() for _ in range(CLIENTS)))
        return results

    results = asyncio.run(run())
    assert len(results) == TRANSFERS
    statuses = {status for status, _ in results}
    assert statuses <= {201, 422}, f"only successes and refusals, never an error: {statuses}"
    refused = {code for status, code in results if status == 422}
    assert refused <= {"insufficient_funds"}
    succeeded = [ref for status, ref in results if status == 201]
    assert len(succeeded) > TRANSFERS // 4, "the load actually moved money"
    assert len(set(succeeded)) == len(succeeded)

    async def books() -> tuple[list[str], list[int], int]:
        db = Database.from_url(pg_url)
        try:
            async with db.transaction() as session:
                problems = await ledger.verify_ledger(session)
                balances = list(
                    (
                        await session.scalars(
                            select(LedgerAccount.balance).where(
                                LedgerAccount.kind == AccountKind.CUSTOMER_WALLET
                            )
                        )
                    ).all()
                )
                transfers = int(
                    await session.scalar(
                        select(func.count(Journal.id)).where(Journal.kind == "wallet_transfer")
                    )
                    or 0
                )
            return problems, balances, transfers
        finally:
            await db.dispose()

    problems, balances, transfers = asyncio.run(books())
    assert problems == []
    assert len(balances) == WALLETS
    assert min(balances) >= 0
    assert sum(balances) == WALLETS * int(START * 100), "money is conserved"
    assert transfers == len(succeeded), "every 2xx reply is exactly one journal"
