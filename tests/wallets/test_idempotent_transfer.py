"""One Idempotency-Key, a hundred identical transfers at once: the money moves once."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import httpx
from sqlalchemy import func, select

from malipo.db import Database
from malipo.ledger import service as ledger
from malipo.ledger.models import Journal
from tests.customers.helpers import Served


def test_hundred_concurrent_identical_transfers_make_one_journal(served: Served) -> None:
    sender, recipient = served.customer(served.a.test_key), served.customer(served.a.test_key)
    assert served.top_up(sender, "100.00").status_code == 201
    body = {"recipientCustomerId": str(recipient.id), "amount": "12.50", "description": "rent"}
    headers = {**sender.headers, "Idempotency-Key": "rent-2026-11"}

    async def fire() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=served.url, timeout=60) as client:
            return await asyncio.gather(
                *(client.post("/api/v1/wallet/transfer", json=body, headers=headers) for _ in range(100))
            )

    replies = asyncio.run(fire())
    created = [r for r in replies if r.status_code == 201]
    others = [r for r in replies if r.status_code != 201]
    assert created, "at least the first request succeeded"
    assert all(r.status_code == 409 and r.json()["code"] == "idempotency_key_in_flight" for r in others)
    assert len({r.json()["reference"] for r in created}) == 1, "every success is the same transfer"
    assert sum(1 for r in created if r.headers.get("idempotent-replayed") != "true") == 1

    after = served.client.post(served.url + "/api/v1/wallet/transfer", json=body, headers=headers)
    assert after.status_code == 201
    assert after.headers["idempotent-replayed"] == "true"
    assert Decimal(served.balance(sender)) == Decimal("87.50")
    assert Decimal(served.balance(recipient)) == Decimal("12.50")

    async def journals() -> tuple[int, list[str]]:
        db = Database.from_url(served.db_url)
        try:
            async with db.transaction() as session:
                count = select(func.count(Journal.id)).where(Journal.kind == "wallet_transfer")
                return int(await session.scalar(count) or 0), await ledger.verify_ledger(session)
        finally:
            await db.dispose()

    count, problems = asyncio.run(journals())
    assert count == 1
    assert problems == []
