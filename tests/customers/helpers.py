"""A live malipo with two merchants, and HTTP helpers for customers and wallets.

Merchant A has a sandbox and a live key; merchant B a sandbox key. Shared by the
customer and wallet tests.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx
from sqlalchemy import func, select

from malipo.app import create_app
from malipo.config import Settings
from malipo.core.clock import FrozenClock
from malipo.db import Database
from malipo.http.permissions import sync_permissions
from malipo.ledger import service as ledger
from malipo.ledger.models import Journal
from tests.factories import PASSWORD, Merchant, bearer, make_merchant


@dataclass
class Customer:
    id: uuid.UUID
    email: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return bearer(self.token)


@dataclass
class Served:
    url: str
    clock: FrozenClock
    settings: Settings
    a: Merchant
    b: Merchant
    client: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=30))

    @property
    def db_url(self) -> str:
        return self.settings.resolved_database_url

    def request(self, method: str, path: str, headers: dict[str, str], **kwargs: Any) -> httpx.Response:
        return self.client.request(method, self.url + path, headers=headers, **kwargs)

    def register(self, key: str, email: str, password: str = PASSWORD, **extra: Any) -> httpx.Response:
        body = {"email": email, "password": password, "fullName": "Wanjiru Kamau", **extra}
        return self.request("POST", "/api/v1/customers/register", bearer(key), json=body)

    def login(self, key: str, email: str, password: str = PASSWORD) -> httpx.Response:
        return self.request(
            "POST", "/api/v1/customers/login", bearer(key), json={"email": email, "password": password}
        )

    def customer(self, key: str, email: str | None = None) -> Customer:
        """A registered, logged-in customer of ``key``'s client and mode."""
        email = email or f"{uuid.uuid4().hex[:10]}@example.com"
        registered = self.register(key, email)
        assert registered.status_code == 201, registered.text
        logged_in = self.login(key, email)
        assert logged_in.status_code == 200, logged_in.text
        return Customer(uuid.UUID(registered.json()["id"]), email, logged_in.json()["accessToken"])

    def relogin(self, key: str, *customers: Customer) -> None:
        """Fresh tokens, for after the clock moved past their expiry."""
        for customer in customers:
            reply = self.login(key, customer.email)
            assert reply.status_code == 200, reply.text
            customer.token = reply.json()["accessToken"]

    def balance(self, customer: Customer) -> str:
        reply = self.request("GET", "/api/v1/wallet/balance", customer.headers)
        assert reply.status_code == 200, reply.text
        return reply.json()["balance"]

    def top_up(
        self, customer: Customer, amount: object, description: str = "top up", **headers: str
    ) -> httpx.Response:
        return self.request(
            "POST",
            "/api/v1/wallet/top-up",
            {**customer.headers, **headers},
            json={"amount": amount, "description": description},
        )

    def transfer(
        self, sender: Customer, recipient: uuid.UUID, amount: object, description: str = "transfer"
    ) -> httpx.Response:
        body = {"recipientCustomerId": str(recipient), "amount": amount, "description": description}
        return self.request("POST", "/api/v1/wallet/transfer", sender.headers, json=body)

    def pay(
        self, customer: Customer, amount: object, reference: str, description: str = "invoice"
    ) -> httpx.Response:
        body = {"amount": amount, "description": description, "externalReference": reference}
        return self.request("POST", "/api/v1/wallet/pay", customer.headers, json=body)


def serve(settings: Settings, live_server: Any) -> Served:
    """malipo on loopback, over the test's database, with merchants A and B."""
    clock = FrozenClock()
    app = create_app(settings, clock=clock)

    async def build() -> tuple[Merchant, Merchant]:
        db = Database.from_url(settings.resolved_database_url)
        try:
            await sync_permissions(db, app.routes, clock.now())
            a = await make_merchant(db, "a", now=clock.now())
            return a, await make_merchant(db, "b", now=clock.now())
        finally:
            await db.dispose()

    a, b = asyncio.run(build())
    return Served(live_server(app).url, clock, settings, a, b)


@dataclass(frozen=True)
class Books:
    """What the ledger says: its problems (none, when it adds up) and how many journals it holds."""

    problems: list[str]
    journals: int


async def read_books(db_url: str) -> Books:
    db = Database.from_url(db_url)
    try:
        async with db.transaction() as session:
            return Books(
                await ledger.verify_ledger(session),
                int(await session.scalar(select(func.count(Journal.id))) or 0),
            )
    finally:
        await db.dispose()


def books(served: Served) -> Books:
    return asyncio.run(read_books(served.db_url))
