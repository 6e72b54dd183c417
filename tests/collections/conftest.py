"""A live malipo, the Daraja simulator and a merchant's callback receiver, all over real HTTP.

- ``daraja_sim`` and ``receiver`` are shared by every test (they hold no database state);
  each test reads its own mailbox on the receiver.
- ``start_malipo(**settings)`` serves malipo over the test's database (SQLite or PostgreSQL)
  with its in-process worker, pointed at the simulator, with merchant A (sandbox service
  wallet funded) and merchant B (nothing funded). ``world`` is ``start_malipo()``.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import threading
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from malipo.app import create_app
from malipo.collections.models import Collection
from malipo.config import Settings
from malipo.core import crypto
from malipo.core.clock import SystemClock
from malipo.core.ids import new_reference
from malipo.db import Database
from malipo.identity import service as identity
from malipo.identity.models import ApiUser, ClientStatus, ClientType, KeyMode
from malipo.ledger import service as ledger
from malipo.ledger.models import AccountKind, Hold, Journal, LedgerAccount
from malipo.payouts.models import Payout
from malipo.providers.daraja.simulator import DarajaSimulator, StkPush, create_simulator_app
from malipo.webhooks.models import WebhookAttempt, WebhookDelivery
from malipo.worker.models import Job
from tests.fixtures.servers import LiveServer

CURRENCY = "KES"
SERVICE_FUNDS = 500_00  # merchant A's sandbox service wallet, in cents

# The simulator's scripted phones (see malipo.providers.daraja.simulator).
PAYS = "254711222333"
CANCELLED = "254700000001"  # 1032
UNREACHABLE = "254700000002"  # 1037
INSUFFICIENT = "254700000003"  # 1
WRONG_PIN = "254700000004"  # 2001
NO_CALLBACK = "254700000005"  # never answered
CALLBACK_LOST = "254700000006"  # paid, callback lost

FINAL = ("SUCCESS", "FAILED")


async def eventually(check: Callable[[], Awaitable[Any]], what: str, timeout: float = 10.0) -> Any:
    """Poll ``check`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.02)


# -- the merchant's callback endpoint ------------------------------------------------------


class CallbackReceiver:
    """Merchant callback endpoints: every POSTed body kept by mailbox (one per test); a mailbox
    can be told to answer 500 to its first N hits."""

    def __init__(self) -> None:
        self.hits: Counter[str] = Counter()
        self.failures: Counter[str] = Counter()
        self.bodies: dict[str, list[dict[str, Any]]] = {}
        self.app = Starlette(routes=[Route("/{mailbox}", self._receive, methods=["POST"])])
        self.url = ""

    async def _receive(self, request: Request) -> Response:
        mailbox = request.path_params["mailbox"]
        self.hits[mailbox] += 1
        if self.failures[mailbox] > 0:
            self.failures[mailbox] -= 1
            return PlainTextResponse("merchant server error", status_code=500)
        self.bodies.setdefault(mailbox, []).append(await request.json())
        return JSONResponse({"received": True})


@dataclass
class Mailbox:
    receiver: CallbackReceiver
    name: str = field(default_factory=lambda: new_reference(12).lower())

    @property
    def url(self) -> str:
        return f"{self.receiver.url}/{self.name}"

    @property
    def hits(self) -> int:
        return self.receiver.hits[self.name]

    @property
    def bodies(self) -> list[dict[str, Any]]:
        return self.receiver.bodies.get(self.name, [])

    def fail_first(self, count: int) -> None:
        self.receiver.failures[self.name] = count

    async def wait_for(self, count: int = 1, timeout: float = 10.0) -> list[dict[str, Any]]:
        async def arrived() -> bool:
            return len(self.bodies) >= count

        await eventually(arrived, f"{count} callback(s) at the merchant's endpoint", timeout)
        return self.bodies

    def by_reference(self, checkout_request_id: str) -> list[dict[str, Any]]:
        return [b for b in self.bodies if b["response"]["CheckoutRequestID"] == checkout_request_id]


@pytest.fixture(scope="session")
def receiver() -> Iterator[CallbackReceiver]:
    found = CallbackReceiver()
    with LiveServer(found.app) as server:
        found.url = server.url
        yield found


@pytest.fixture
def mailbox(receiver: CallbackReceiver) -> Mailbox:
    return Mailbox(receiver)


# -- Daraja ---------------------------------------------------------------------------------


@dataclass
class Sim:
    sim: DarajaSimulator
    url: str

    def push_for(self, reference: str) -> StkPush | None:
        """The STK push malipo sent for a collection (AccountReference is its reference)."""
        found = [p for p in list(self.sim.stk_pushes.values()) if p.account_reference == reference]
        assert len(found) <= 1, f"more than one STK push for {reference}"
        return found[0] if found else None

    def pushes_for(self, reference: str) -> int:
        return sum(1 for p in list(self.sim.stk_pushes.values()) if p.account_reference == reference)

    def callbacks_to(self, url: str) -> list[dict[str, Any]]:
        return [d.body for d in list(self.sim.deliveries) if d.url == url]


@dataclass(frozen=True)
class Fault:
    """What a Daraja path answers instead of the simulator's reply: ``status`` and ``body``
    (JSON, or text), after the simulator did the work (``after=True``) or instead of it."""

    status: int
    body: dict[str, Any] | str
    after: bool = True
    times: int | None = None  # the first this many requests only; None: all of them


class Faults:
    """ASGI middleware over the simulator: per path, replies held until ``release`` is set (at
    most ``limit`` s), or replaced by a :class:`Fault`."""

    def __init__(self, app: Starlette, limit: float = 15.0) -> None:
        self.app = app
        self.state = app.state
        self.held: set[str] = set()
        self.release = threading.Event()
        self.limit = limit
        self.faults: dict[str, Fault] = {}

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        path = scope.get("path", "")
        fault = self.faults.get(path) if scope["type"] == "http" else None
        if fault is not None and fault.times is not None:
            self.faults[path] = replace(fault, times=fault.times - 1)
            if fault.times <= 0:
                fault = None
        if fault is None and path not in self.held:
            await self.app(scope, receive, send)
            return
        replies: list[dict[str, Any]] = []

        async def keep(message: dict[str, Any]) -> None:
            replies.append(message)

        if fault is None or fault.after:
            await self.app(scope, receive, keep)
        if path in self.held:
            for _ in range(int(self.limit / 0.01)):
                if self.release.is_set():
                    break
                await asyncio.sleep(0.01)
        if fault is None:
            for message in replies:
                await send(message)
            return
        reply = (
            JSONResponse(fault.body, fault.status)
            if isinstance(fault.body, dict)
            else PlainTextResponse(fault.body, fault.status)
        )
        await reply(scope, receive, send)


def start_sim(**options: Any) -> tuple[LiveServer, Sim]:
    app = create_simulator_app(**({"callback_delay": 0.0, "callback_backoff": 0.02} | options))
    server = LiveServer(app).__enter__()
    return server, Sim(app.state.simulator, server.url)


@pytest.fixture
def faulty_sim() -> Iterator[tuple[Sim, Faults]]:
    """A simulator of the test's own behind :class:`Faults` (callbacks at once; set
    ``sim.sim.callback_delay`` to change that)."""
    faults = Faults(create_simulator_app(callback_delay=0.0, callback_backoff=0.02))
    with LiveServer(faults) as server:
        yield Sim(faults.state.simulator, server.url), faults
        faults.release.set()


@pytest.fixture(scope="session")
def daraja_sim() -> Iterator[Sim]:
    """The shared simulator: callbacks at once; an unanswered prompt expires after 0.3 s."""
    server, sim = start_sim(stk_expiry=0.3)
    yield sim
    server.__exit__(None, None, None)


# -- malipo ---------------------------------------------------------------------------------


@dataclass
class Merchant:
    client_id: uuid.UUID
    test_key: str
    api_username: str
    api_password: str

    @property
    def headers(self) -> dict[str, str]:
        """Sandbox: Bearer mk_test_…"""
        return {"Authorization": f"Bearer {self.test_key}"}

    @property
    def basic(self) -> dict[str, str]:
        """Live: Pay Hero's Basic api_username:api_password."""
        token = base64.b64encode(f"{self.api_username}:{self.api_password}".encode()).decode()
        return {"Authorization": f"Basic {token}"}


@dataclass(frozen=True)
class Balances:
    """(balance, held) in cents of the accounts a collection touches, for one merchant and mode."""

    service: tuple[int, int]
    payments: tuple[int, int]
    fee_revenue: int
    clearing: int
    external: int

    @property
    def service_available(self) -> int:
        return self.service[0] - self.service[1]


@dataclass
class World:
    url: str
    settings: Settings
    db: Database
    sim: Sim
    a: Merchant
    b: Merchant
    http: httpx.AsyncClient
    app: Any = None  # the served app (its caches), set by start_malipo

    # -- the Pay Hero API

    async def pay(
        self, amount: int, phone: str, merchant: Merchant | None = None, **extra: Any
    ) -> httpx.Response:
        body = {"amount": amount, "phone_number": phone, "provider": "m-pesa", **extra}
        return await self.http.post("/api/v2/payments", json=body, headers=(merchant or self.a).headers)

    async def queued(self, amount: int, phone: str, mailbox: Mailbox | None = None, **extra: Any) -> str:
        """Ask merchant A's collection; its reference."""
        if mailbox is not None:
            extra["callback_url"] = mailbox.url
        reply = await self.pay(amount, phone, **extra)
        assert reply.status_code == 201, reply.text
        return str(reply.json()["reference"])

    async def status(self, reference: str, merchant: Merchant | None = None) -> httpx.Response:
        return await self.http.get(
            "/api/v2/transaction-status",
            params={"reference": reference},
            headers=(merchant or self.a).headers,
        )

    async def final_status(
        self, reference: str, merchant: Merchant | None = None, timeout: float = 10.0
    ) -> dict[str, Any]:
        async def final() -> dict[str, Any] | None:
            reply = await self.status(reference, merchant)
            assert reply.status_code == 200, reply.text
            body: dict[str, Any] = reply.json()
            return body if body["status"] in FINAL else None

        return await eventually(final, f"{reference} to reach SUCCESS or FAILED", timeout)  # type: ignore[no-any-return]

    # -- the database

    async def collection(self, reference: str) -> Collection:
        async with self.db.transaction() as session:
            found = await session.scalar(select(Collection).where(Collection.reference == reference))
        assert found is not None, f"no collection {reference}"
        return found

    async def collections(self) -> list[Collection]:
        async with self.db.transaction() as session:
            return list((await session.scalars(select(Collection))).all())

    async def deliveries(self, reference: str) -> list[WebhookDelivery]:
        async with self.db.transaction() as session:
            rows = await session.scalars(
                select(WebhookDelivery)
                .where(WebhookDelivery.subject_reference == reference)
                .order_by(WebhookDelivery.created_at)
            )
            return list(rows.all())

    async def attempts(self, delivery_id: uuid.UUID) -> list[WebhookAttempt]:
        async with self.db.transaction() as session:
            rows = await session.scalars(
                select(WebhookAttempt)
                .where(WebhookAttempt.delivery_id == delivery_id)
                .order_by(WebhookAttempt.number)
            )
            return list(rows.all())

    async def delivered(self, reference: str, count: int = 1, timeout: float = 10.0) -> list[WebhookDelivery]:
        """Wait until ``count`` deliveries of ``reference`` are delivered; all of them."""

        async def done() -> list[WebhookDelivery] | None:
            found = await self.deliveries(reference)
            return found if sum(d.status == "delivered" for d in found) >= count else None

        return await eventually(done, f"{count} delivered callback(s) for {reference}", timeout)  # type: ignore[no-any-return]

    async def holds(self, reference: str) -> list[Hold]:
        async with self.db.transaction() as session:
            rows = await session.scalars(select(Hold).where(Hold.reference == f"fee:{reference}"))
            return list(rows.all())

    async def journals(self, *, kind: str | None = None) -> list[Journal]:
        async with self.db.transaction() as session:
            query = select(Journal)
            if kind is not None:
                query = query.where(Journal.kind == kind)
            return list((await session.scalars(query)).all())

    async def jobs(self, kind: str) -> list[Job]:
        async with self.db.transaction() as session:
            return list((await session.scalars(select(Job).where(Job.kind == kind))).all())

    async def balances(self, merchant: Merchant | None = None, mode: str = "test") -> Balances:
        client_id = (merchant or self.a).client_id
        async with self.db.transaction() as session:
            rows = (
                await session.execute(
                    select(
                        LedgerAccount.owner_key, LedgerAccount.kind, LedgerAccount.balance, LedgerAccount.held
                    )
                    .where(LedgerAccount.mode == mode, LedgerAccount.currency == CURRENCY)
                    .where(LedgerAccount.owner_key.in_(["system", ledger.owner_key(client_id=client_id)]))
                )
            ).all()
        found = {(owner == "system", kind): (balance, held) for owner, kind, balance, held in rows}

        def of(kind: AccountKind, system: bool = False) -> tuple[int, int]:
            return found.get((system, kind), (0, 0))

        return Balances(
            service=of(AccountKind.SERVICE_WALLET),
            payments=of(AccountKind.PAYMENTS_WALLET),
            fee_revenue=of(AccountKind.FEE_REVENUE, True)[0],
            clearing=of(AccountKind.MOBILE_MONEY_CLEARING, True)[0],
            external=of(AccountKind.EXTERNAL_SETTLEMENT, True)[0],
        )

    async def verify_ledger(self) -> None:
        async with self.db.transaction() as session:
            problems = await ledger.verify_ledger(session)
        assert problems == [], problems

    async def count(self, model: type[Any]) -> int:
        async with self.db.transaction() as session:
            return int(await session.scalar(select(func.count()).select_from(model)) or 0)


API_PASSWORD = "correct-horse-battery-staple"


@functools.cache
def _api_password_hash() -> str:
    return crypto.hash_password(API_PASSWORD)  # argon2: once per run, not per merchant


async def _make_merchant(db: Database, tag: str, *, fund: int) -> Merchant:
    now = SystemClock().now()
    async with db.transaction() as session:
        roles = await identity.ensure_system_roles(session, now)
        client = await identity.create_client(
            session, name=f"Merchant {tag}", client_type=ClientType.COMPANY, email=f"{tag}@merchant.example",
            status=ClientStatus.ACTIVE, now=now,
        )  # fmt: skip
        wallets = await ledger.open_merchant_wallets(session, client.id, client.currency, now)
        api_user = ApiUser(
            client_id=client.id, role_id=roles["Developer"].id, developer_name=f"dev {tag}",
            developer_email=f"dev@{tag}.example", developer_phone_number="+254700000009",
            api_username=f"{tag}-{new_reference(12).lower()}", api_password_hash=_api_password_hash(),
            created_at=now,
        )  # fmt: skip
        session.add(api_user)
        await session.flush()
        key = await identity.issue_api_key(session, api_user=api_user, mode=KeyMode.TEST, now=now)
        for mode in ("test", "live") if fund else ():
            funding = await ledger.system_account(session, AccountKind.SANDBOX_FUNDING, CURRENCY, mode, now)
            service = wallets[(mode, AccountKind.SERVICE_WALLET)]
            await ledger.post_journal(
                session,
                [ledger.Leg(funding.id, -fund, CURRENCY), ledger.Leg(service.id, fund, CURRENCY)],
                kind="test_funding", description="service wallet funds for the test", mode=mode, now=now,
                client_id=client.id,
            )  # fmt: skip
        return Merchant(client.id, key.raw, api_user.api_username, API_PASSWORD)


StartMalipo = Callable[..., Awaitable[World]]


@pytest.fixture
async def start_malipo(settings: Settings, daraja_sim: Sim, tmp_path: Path) -> AsyncIterator[StartMalipo]:
    """``await start_malipo(**settings)``: malipo on loopback over this test's database."""
    started: list[tuple[LiveServer, World]] = []

    async def start(*, sim: Sim | None = None, **overrides: Any) -> World:
        sim = sim or daraja_sim
        options: dict[str, Any] = {
            "inprocess_worker": True,
            "worker_poll_seconds": 0.05,
            "daraja_simulator_url": sim.url,
            "stk_query_after_seconds": 30.0,  # tests that want the STK query set it lower
            "webhook_retry_base_seconds": 0.05,
            "audit_enabled": False,
            "log_level": "WARNING",
        }
        served = settings.model_copy(update=options | overrides)
        db = Database.from_url(served.resolved_database_url)
        app = create_app(served, clock=SystemClock())
        server = LiveServer(app)
        served.public_url = server.url  # where Daraja's callbacks come back to
        server.__enter__()  # its start-up syncs the permissions the roles need
        a = await _make_merchant(db, "a", fund=SERVICE_FUNDS)
        b = await _make_merchant(db, "b", fund=0)
        world = World(server.url, served, db, sim, a, b, httpx.AsyncClient(base_url=server.url, timeout=30))
        world.app = app
        started.append((server, world))
        return world

    yield start
    for server, world in reversed(started):
        await world.http.aclose()
        server.__exit__(None, None, None)
        await world.db.dispose()


@pytest.fixture
async def world(start_malipo: StartMalipo) -> World:
    return await start_malipo()


# -- payouts: shared by the mobile and bank payout tests ---------------------------------


async def fund_payments(world: World, amount: int, merchant: Merchant | None = None) -> None:
    """Put ``amount`` cents in the merchant's sandbox payments wallet (as if collected)."""
    client_id = (merchant or world.a).client_id
    now = SystemClock().now()
    async with world.db.transaction() as session:
        funding = await ledger.system_account(session, AccountKind.SANDBOX_FUNDING, CURRENCY, "test", now)
        wallet = await ledger.open_account(
            session, owner=ledger.owner_key(client_id=client_id), kind=AccountKind.PAYMENTS_WALLET,
            currency=CURRENCY, mode="test", client_id=client_id, now=now,
        )  # fmt: skip
        await ledger.post_journal(
            session,
            [ledger.Leg(funding.id, -amount, CURRENCY), ledger.Leg(wallet.id, amount, CURRENCY)],
            kind="test_funding", description="collected funds for the test", mode="test", now=now,
            client_id=client_id,
        )  # fmt: skip


async def payout_by_reference(world: World, reference: str) -> Payout:
    async with world.db.transaction() as session:
        found = await session.scalar(select(Payout).where(Payout.reference == reference))
    assert found is not None
    return found


async def final_payout(world: World, reference: str, timeout: float = 10.0) -> Payout:
    async def final() -> Payout | None:
        payout = await payout_by_reference(world, reference)
        return payout if payout.status in ("SUCCESS", "FAILED") else None

    return await eventually(final, f"payout {reference} to finish", timeout)  # type: ignore[no-any-return]


async def active_holds(world: World) -> int:
    async with world.db.transaction() as session:
        return len((await session.scalars(select(Hold).where(Hold.status == "active"))).all())
