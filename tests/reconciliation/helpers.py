"""What the reconciliation tests share: a malipo with a Daraja simulator of its own (the
statement is per simulator), an operator signed in, a day's run, and the ledger's figures."""

from __future__ import annotations

import uuid
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from sqlalchemy import select, update

from malipo.collections.models import Collection
from malipo.core.clock import SystemClock
from malipo.ledger.models import AccountKind, LedgerAccount
from malipo.reconciliation import service
from malipo.reconciliation.service import RunResult
from malipo.worker.registry import BatchContext
from tests.factories import PASSWORD, make_operator
from tests.fixtures.world import Sim, StartMalipo, World

CURRENCY = "KES"


async def reconciling_world(start_malipo: StartMalipo, sim: Sim, **overrides: Any) -> World:
    return await start_malipo(sim=sim, **overrides)


def today(world: World) -> date:
    return datetime.now(ZoneInfo(world.settings.reconciliation_timezone)).date()


async def run_day(world: World, day: date, mode: str = "test") -> RunResult:
    async with httpx.AsyncClient(timeout=30) as http:
        return await service.reconcile_day(
            BatchContext(world.db, SystemClock(), world.settings, http), day, mode
        )


async def operator(world: World) -> httpx.AsyncClient:
    """An HTTP client signed in as operator staff (CompanyAdmin); close it after."""
    email = f"ops-{uuid.uuid4().hex[:8]}@malipo.example"
    async with world.db.transaction() as session:
        await make_operator(session, now=SystemClock().now(), email=email)
    client = httpx.AsyncClient(base_url=world.url, timeout=30)
    reply = await client.post("/api/v1/account/login", json={"username": email, "password": PASSWORD})
    assert reply.status_code == 200, reply.text
    client.headers["X-CSRF-Token"] = reply.cookies["malipo_csrf"]
    return client


async def backdate_push(world: World, reference: str, seconds: float = 3600) -> None:
    """As if the push had been made ``seconds`` ago (its reconcile delay long past)."""
    collection = await world.collection(reference)
    assert collection.sent_at is not None
    async with world.db.transaction() as session:
        await session.execute(
            update(Collection)
            .where(Collection.id == collection.id)
            .values(sent_at=collection.sent_at - timedelta(seconds=seconds))
        )


async def system_balance(world: World, kind: AccountKind, mode: str = "test") -> int:
    async with world.db.transaction() as session:
        found = await session.scalar(
            select(LedgerAccount.balance).where(
                LedgerAccount.owner_key == "system",
                LedgerAccount.kind == kind,
                LedgerAccount.mode == mode,
                LedgerAccount.currency == CURRENCY,
            )
        )
    return int(found or 0)
