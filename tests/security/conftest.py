"""A live malipo for hostile input: two merchants, their customers and channels, and a snapshot of
everything a request could change.

One server per backend (SQLite, PostgreSQL) serves a whole module: every hostile request is
refused and changes nothing, which each test checks with a snapshot before and after, so the
requests need no database of their own.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from malipo.app import create_app
from malipo.collections.models import Collection, PaymentChannel
from malipo.config import Settings
from malipo.core.clock import SystemClock
from malipo.customers.models import Customer
from malipo.db import Database
from malipo.db.idempotency_models import IdempotencyRecord
from malipo.ledger import service as ledger
from malipo.ledger.models import AccountKind, Hold, Journal, LedgerAccount, Posting
from malipo.payouts.models import Payout
from malipo.sms.models import SmsMessage
from malipo.worker.models import Job
from tests.factories import Merchant, make_funded_wallet, make_merchant, on_database
from tests.fixtures.databases import BACKENDS
from tests.fixtures.servers import LiveServer

CURRENCY = "KES"
SERVICE_FUNDS = 500_00
PAYMENTS_FUNDS = 10_000_00
CUSTOMER_FUNDS = "1000.00"
PASSWORD = "correct horse battery"

# Every table a money route writes to: a refused request changes none of them.
COUNTED = (
    Journal,
    Posting,
    Hold,
    Collection,
    Payout,
    PaymentChannel,
    Job,
    SmsMessage,
    Customer,
    IdempotencyRecord,
)


@dataclass(frozen=True)
class Snapshot:
    """Each ledger account's (balance, held), and the row count of every table money routes write."""

    accounts: dict[uuid.UUID, tuple[int, int]]
    counts: dict[str, int]
    problems: list[str]


@dataclass
class Target:
    url: str
    db_url: str
    a: Merchant
    b: Merchant
    customers: dict[str, tuple[uuid.UUID, str]] = field(default_factory=dict)  # name: (id, token)
    channels: dict[str, int] = field(default_factory=dict)  # name: channel id
    http: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=30))

    def headers(self, caller: str) -> dict[str, str]:
        """``key_a``/``key_b`` (Bearer mk_test_), ``basic_a`` (Pay Hero's pair) or a customer's token."""
        if caller == "key_a":
            return self.a.headers
        if caller == "key_b":
            return self.b.headers
        if caller == "basic_a":
            return self.a.basic
        return {"Authorization": f"Bearer {self.customers[caller][1]}"}

    def send(
        self,
        method: str,
        path: str,
        caller: str,
        *,
        json_body: Any = None,
        content: bytes | Iterator[bytes] | None = None,
        headers: dict[str, str] | None = None,
        params: dict[str, Any] | None = None,
    ) -> httpx.Response:
        sent = {**self.headers(caller), **(headers or {})}
        if json_body is not None:
            return self.http.request(method, self.url + path, json=json_body, headers=sent, params=params)
        return self.http.request(method, self.url + path, content=content, headers=sent, params=params)

    def snapshot(self) -> Snapshot:
        return asyncio.run(_snapshot(self.db_url))


async def _snapshot(db_url: str) -> Snapshot:
    db = Database.from_url(db_url)
    try:
        async with db.transaction() as session:
            rows = await session.execute(select(LedgerAccount.id, LedgerAccount.balance, LedgerAccount.held))
            accounts = {account_id: (int(balance), int(held)) for account_id, balance, held in rows}
            counts = {
                model.__tablename__: int(await session.scalar(select(func.count()).select_from(model)) or 0)
                for model in COUNTED
            }
            problems = await ledger.verify_ledger(session)
        return Snapshot(accounts, counts, problems)
    finally:
        await db.dispose()


async def _merchants(db_url: str) -> tuple[Merchant, Merchant]:
    async def build(db: Database) -> tuple[Merchant, Merchant]:
        made = []
        for tag in ("a", "b"):
            merchant = await make_merchant(
                db, tag, service_funds=SERVICE_FUNDS, funded_modes=("test", "live")
            )
            async with db.transaction() as session:
                await make_funded_wallet(
                    session, merchant.client_id, PAYMENTS_FUNDS, now=SystemClock().now(),
                    kind=AccountKind.PAYMENTS_WALLET, description="collected funds for the test",
                )  # fmt: skip
            made.append(merchant)
        return made[0], made[1]

    return await on_database(db_url, build)


def _customer(target: Target, caller: str, name: str) -> None:
    email = f"{name}-{uuid.uuid4().hex[:8]}@example.com"
    body = {"email": email, "password": PASSWORD, "fullName": "Wanjiru Kamau"}
    registered = target.send("POST", "/api/v1/customers/register", caller, json_body=body)
    assert registered.status_code == 201, registered.text
    login = {"email": email, "password": PASSWORD}
    logged_in = target.send("POST", "/api/v1/customers/login", caller, json_body=login)
    assert logged_in.status_code == 200, logged_in.text
    target.customers[name] = (uuid.UUID(registered.json()["id"]), logged_in.json()["accessToken"])
    topped = target.send(
        "POST", "/api/v1/wallet/top-up", name, json_body={"amount": CUSTOMER_FUNDS, "description": "funds"}
    )
    assert topped.status_code == 201, topped.text


def _channel(target: Target, caller: str, name: str) -> None:
    body = {"channel_type": "paybill", "short_code": "522522", "description": f"{name} paybill"}
    reply = target.send("POST", "/api/v2/payment_channels", caller, json_body=body)
    assert reply.status_code == 201, reply.text
    target.channels[name] = int(reply.json()["id"])


@pytest.fixture(scope="module", params=BACKENDS)
def target(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    """malipo on loopback (no worker: nothing leaves), merchants A and B with funded service and
    payments wallets, customers ``alice`` and ``amos`` of A and ``bea`` of B (KES 1,000 each),
    and a paybill channel of each merchant (``paybill_a``, ``paybill_b``)."""
    provider = {"sqlite": "sqlite_databases", "postgresql": "postgres_databases"}[request.param]
    databases = request.getfixturevalue(provider)
    db_url = databases.new()
    settings = Settings(
        env="test",
        var_dir=Path(tmp_path_factory.mktemp("security")) / "var",
        database_url=db_url,
        inprocess_worker=False,
        audit_enabled=False,
        log_json=True,
        log_level="WARNING",
    ).require_secrets()
    with LiveServer(create_app(settings, clock=SystemClock())) as server:
        a, b = asyncio.run(_merchants(settings.resolved_database_url))
        found = Target(server.url, settings.resolved_database_url, a, b)
        for caller, name in (("key_a", "alice"), ("key_a", "amos"), ("key_b", "bea")):
            _customer(found, caller, name)
        _channel(found, "key_a", "paybill_a")
        _channel(found, "key_b", "paybill_b")
        yield found
        found.http.close()
