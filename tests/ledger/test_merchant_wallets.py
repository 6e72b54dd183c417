"""An approved merchant has payments and service wallets, live and sandbox, in its currency."""

from __future__ import annotations

from sqlalchemy import select

from malipo.accounts.schemas import ClientIn
from malipo.config import Settings
from malipo.core.clock import FrozenClock
from malipo.db import Database
from malipo.identity import clients
from malipo.identity.models import Client, ClientType
from malipo.ledger.models import SYSTEM_KINDS, AccountKind, LedgerAccount
from malipo.seed import seed_demo


async def _accounts(db: Database, owner: str) -> set[tuple[str, str, str]]:
    async with db.transaction() as session:
        rows = await session.scalars(select(LedgerAccount).where(LedgerAccount.owner_key == owner))
        return {(a.mode, a.kind, a.currency) for a in rows}


async def test_approval_opens_the_merchants_wallets(
    db: Database, settings: Settings, clock: FrozenClock
) -> None:
    body = ClientIn(
        client_type=ClientType.COMPANY, name="Salone Traders", phone_number="+23276123456",
        email_address="traders@example.com", country="Sierra Leone",
    )  # fmt: skip
    async with db.transaction() as session:
        client = await clients.register_client(session, body, now=clock.now(), settings=settings)
    assert await _accounts(db, f"client:{client.id}") == set(), "a pending merchant has no wallets"
    async with db.transaction() as session:
        pending = await session.get(Client, client.id)
        assert pending is not None
        client = await clients.approve_client(session, pending, now=clock.now(), settings=settings)
    expected = {
        (mode, kind, "SLE")
        for mode in ("live", "test")
        for kind in (AccountKind.PAYMENTS_WALLET, AccountKind.SERVICE_WALLET)
    }
    assert await _accounts(db, f"client:{client.id}") == expected
    chart = await _accounts(db, "system")
    assert {(mode, kind, "SLE") for mode in ("live", "test") for kind in SYSTEM_KINDS} <= chart


async def test_demo_merchant_has_its_wallets(db: Database, clock: FrozenClock) -> None:
    demo = await seed_demo(db, clock)
    assert len(await _accounts(db, f"client:{demo.merchant_id}")) == 4
    await seed_demo(db, clock)  # a second seed opens nothing new
    assert len(await _accounts(db, f"client:{demo.merchant_id}")) == 4
