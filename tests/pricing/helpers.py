"""A live malipo (no worker) with an operator and two merchants, for pricing and channel tests.

- ``operator``: a CompanyAdmin portal user (no client), signed in with a cookie session.
- ``a`` and ``b``: merchants, each with a sandbox key (a Developer API user) and a live portal
  user (ClientAdmin). Merchant A's sandbox service and payments wallets hold ``FUNDS``.

Portal users are made and signed in on first use (password hashing is what costs).

With the worker off a collection or payout stays QUEUED: its fee hold can be read at leisure.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import httpx
from sqlalchemy import select

from malipo.app import create_app
from malipo.config import Settings
from malipo.core.clock import FrozenClock
from malipo.db import Database
from malipo.http.permissions import sync_permissions
from malipo.ledger.models import AccountKind, Hold, LedgerAccount
from tests.factories import PASSWORD, make_merchant, make_portal_user, on_database

FUNDS = 500_00  # cents, in each of merchant A's sandbox wallets


@dataclass
class Caller:
    headers: dict[str, str]
    cookies: dict[str, str] = field(default_factory=dict)


@dataclass
class Merchant:
    client_id: uuid.UUID
    key: Caller  # sandbox API key
    _portal_user: Callable[[], Caller] = field(repr=False)

    @cached_property
    def admin(self) -> Caller:
        """The merchant's portal user (ClientAdmin, live), signed in."""
        return self._portal_user()


@dataclass
class Gateway:
    url: str
    settings: Settings
    a: Merchant
    b: Merchant
    http: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=30))

    @cached_property
    def operator(self) -> Caller:
        """A CompanyAdmin (operator staff), signed in."""
        return portal_user(self.url, self.settings, "ops@malipo.example", "CompanyAdmin", None)

    def call(self, method: str, path: str, caller: Caller | None, **kwargs: Any) -> httpx.Response:
        headers = dict(caller.headers) if caller else {}
        if caller and caller.cookies:
            headers["Cookie"] = "; ".join(f"{name}={value}" for name, value in caller.cookies.items())
        return self.http.request(method, self.url + path, headers=headers, **kwargs)

    def pay(self, amount: int, merchant: Merchant | None = None) -> str:
        """A sandbox STK push collection of ``amount`` shillings by Pay Hero's API; its reference."""
        reply = self.call(
            "POST", "/api/v2/payments", (merchant or self.a).key,
            json={"amount": amount, "phone_number": "0711222333", "provider": "m-pesa"},
        )  # fmt: skip
        assert reply.status_code == 201, reply.text
        return str(reply.json()["reference"])

    def withdraw(self, amount: int, merchant: Merchant | None = None) -> str:
        reply = self.call(
            "POST", "/api/v2/withdraw", (merchant or self.a).key,
            json={
                "amount": amount, "phone_number": "0711222333", "network_code": "63902", "channel": "mobile"
            },
        )  # fmt: skip
        assert reply.status_code == 201, reply.text
        return str(reply.json()["merchant_reference"])

    def fee_hold(self, reference: str) -> int:
        """The fee held on the service wallet for a collection or payout, in cents."""
        return run(self._fee_hold(reference))

    async def _fee_hold(self, reference: str) -> int:
        db = Database.from_url(self.settings.resolved_database_url)
        try:
            async with db.transaction() as session:
                hold = await session.scalar(select(Hold).where(Hold.reference == f"fee:{reference}"))
                assert hold is not None, f"no fee hold for {reference}"
                account = await session.get(LedgerAccount, hold.account_id)
                assert account is not None
                assert (account.kind, account.client_id, account.mode) == (
                    AccountKind.SERVICE_WALLET, self.a.client_id, "test",
                )  # fmt: skip
                return hold.amount
        finally:
            await db.dispose()

    def service_wallet(self) -> tuple[int, int]:
        """Merchant A's sandbox service wallet: (balance, held) in cents."""

        async def read() -> tuple[int, int]:
            db = Database.from_url(self.settings.resolved_database_url)
            try:
                async with db.transaction() as session:
                    account = await session.scalar(
                        select(LedgerAccount).where(
                            LedgerAccount.client_id == self.a.client_id,
                            LedgerAccount.kind == AccountKind.SERVICE_WALLET,
                            LedgerAccount.mode == "test",
                        )
                    )
                    assert account is not None
                    return account.balance, account.held
            finally:
                await db.dispose()

        return run(read())


def run(coro: Any) -> Any:
    return asyncio.run(coro)


async def _build(db: Database, clock: FrozenClock, app: Any) -> dict[str, Any]:
    now = clock.now()
    await sync_permissions(db, app.routes, now)
    a = await make_merchant(db, "a", now=now, service_funds=FUNDS, payments_funds=FUNDS)
    b = await make_merchant(db, "b", now=now)
    return {"a": (a.client_id, a.test_key), "b": (b.client_id, b.test_key)}


def portal_user(url: str, settings: Settings, email: str, role: str, client_id: uuid.UUID | None) -> Caller:
    """A new portal user with ``role`` (of ``client_id``, or operator staff), signed in."""

    async def create(db: Database) -> None:
        async with db.transaction() as session:
            await make_portal_user(session, email, role=role, client_id=client_id, now=FrozenClock().now())

    run(on_database(settings.resolved_database_url, create))
    reply = httpx.post(f"{url}/api/v1/account/login", json={"username": email, "password": PASSWORD})
    assert reply.status_code == 200, reply.text
    csrf = reply.cookies["malipo_csrf"]
    return Caller(
        {"X-CSRF-Token": csrf}, {"malipo_session": reply.cookies["malipo_session"], "malipo_csrf": csrf}
    )


def serve(settings: Settings, live_server: Any) -> Gateway:
    clock = FrozenClock()
    app = create_app(settings.model_copy(update={"audit_enabled": False}), clock=clock)

    async def build() -> dict[str, Any]:
        db = Database.from_url(settings.resolved_database_url)
        try:
            return await _build(db, clock, app)
        finally:
            await db.dispose()

    made = run(build())
    url = live_server(app).url

    def merchant(tag: str) -> Merchant:
        client_id, raw = made[tag]
        return Merchant(
            client_id,
            Caller({"Authorization": f"Bearer {raw}"}),
            lambda: portal_user(url, settings, f"admin@{tag}.example", "ClientAdmin", client_id),
        )

    return Gateway(url, settings, merchant("a"), merchant("b"))
