"""Build what tests need through malipo's own services and tables.

Each ``make_*`` coroutine works in the caller's session (one transaction), so a test can
build several things and commit them together; ``make_merchant`` and ``on_database`` open
their own. Everything is sandbox (``test``) unless asked otherwise.

- ``make_client``: an approved (ACTIVE) merchant with its payments and service wallets opened.
- ``make_api_user``: its API user (Developer), a sandbox key, a live key if asked, and the Pay
  Hero Basic pair (a ``Merchant``: ``.test``/``.headers``, ``.live``, ``.basic``).
- ``make_funded_wallet``: a balance posted into a wallet through the ledger (a balanced journal
  against sandbox funding).
- ``make_channel``: a paybill, till or bank payment channel.
- ``make_customer``: a wallet customer and its Bearer token.
- ``make_portal_user`` / ``make_operator``: a portal user (a merchant's, or operator staff).
- ``make_merchant``: client, API user and funds in one go.
- ``wallet_balances``: (balance, held) of a merchant's payments and service wallets.
"""

from __future__ import annotations

import base64
import functools
import secrets
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from malipo.collections import service as collections
from malipo.collections.models import PaymentChannel
from malipo.core import crypto
from malipo.core.clock import SystemClock
from malipo.customers import service as customers
from malipo.customers.models import Customer
from malipo.db import Database
from malipo.identity import service as identity
from malipo.identity.models import ApiUser, Client, ClientStatus, ClientType, KeyMode, PortalUser
from malipo.ledger import service as ledger
from malipo.ledger.models import AccountKind, LedgerAccount

CURRENCY = "KES"
PASSWORD = "correct horse battery"  # portal users' and customers'
API_PASSWORD = "correct-horse-battery-staple"  # API users' Pay Hero Basic password

T = TypeVar("T")


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def basic(username: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()}


async def on_database(db_url: str, work: Callable[[Database], Awaitable[T]]) -> T:
    """``await work(db)`` on a Database of its own for ``db_url``, disposed after."""
    db = Database.from_url(db_url)
    try:
        return await work(db)
    finally:
        await db.dispose()


# -- merchants ------------------------------------------------------------------------------


async def make_client(
    session: AsyncSession,
    tag: str,
    *,
    now: datetime,
    client_type: ClientType = ClientType.COMPANY,
    currency: str = CURRENCY,
) -> Client:
    """Merchant ``tag`` (``{tag}@merchant.example``), approved, its four wallets opened."""
    client = await identity.create_client(
        session, name=f"Merchant {tag}", client_type=client_type, email=f"{tag}@merchant.example",
        status=ClientStatus.ACTIVE, currency=currency, now=now,
    )  # fmt: skip
    await ledger.open_merchant_wallets(session, client.id, client.currency, now)
    return client


@dataclass(frozen=True)
class Merchant:
    """A merchant as its API user calls: sandbox key, live key (if issued), Pay Hero's Basic pair."""

    client_id: uuid.UUID
    api_user_id: uuid.UUID
    test_key: str
    live_key: str | None
    api_username: str
    api_password: str

    @property
    def test(self) -> dict[str, str]:
        """Sandbox: Bearer mk_test_…"""
        return bearer(self.test_key)

    @property
    def headers(self) -> dict[str, str]:
        """The sandbox key's headers (what most tests call with)."""
        return self.test

    @property
    def live(self) -> dict[str, str]:
        assert self.live_key is not None, "this API user has no live key"
        return bearer(self.live_key)

    @property
    def basic(self) -> dict[str, str]:
        """Live: Pay Hero's Basic api_username:api_password."""
        return basic(self.api_username, self.api_password)


@functools.cache
def api_password_hash() -> str:
    return crypto.hash_password(API_PASSWORD)  # argon2: once per run, not per API user


async def make_api_user(
    session: AsyncSession,
    client: Client,
    tag: str,
    *,
    now: datetime,
    live_key: bool = True,
    role: str = "Developer",
    phone: str = "+254700000009",  # not one of the Daraja simulator's scripted phones
) -> Merchant:
    """``client``'s API user ``dev {tag}`` with ``role``, a sandbox key and (``live_key``) a live one.

    The row is written as ``identity.create_api_user`` writes it, but with the known
    ``API_PASSWORD`` hashed once per run: argon2 per merchant would cost every test.
    """
    roles = await identity.ensure_system_roles(session, now)
    api_user = ApiUser(
        client_id=client.id, role_id=roles[role].id, developer_name=f"dev {tag}",
        developer_email=f"dev@{tag}.example", developer_phone_number=phone,
        api_username=secrets.token_hex(10), api_password_hash=api_password_hash(), created_at=now,
    )  # fmt: skip
    session.add(api_user)
    await session.flush()
    test = await identity.issue_api_key(session, api_user=api_user, mode=KeyMode.TEST, now=now)
    live = (
        await identity.issue_api_key(session, api_user=api_user, mode=KeyMode.LIVE, now=now)
        if live_key
        else None
    )
    return Merchant(
        client.id, api_user.id, test.raw, live.raw if live else None, api_user.api_username, API_PASSWORD
    )


async def make_funded_wallet(
    session: AsyncSession,
    client_id: uuid.UUID,
    amount: int,
    *,
    now: datetime,
    kind: AccountKind = AccountKind.SERVICE_WALLET,
    mode: str = "test",
    currency: str = CURRENCY,
    description: str = "funds for the test",
) -> LedgerAccount:
    """The merchant's ``kind`` wallet in ``mode`` (opened if missing), ``amount`` cents richer:
    one balanced journal from the sandbox funding account."""
    funding = await ledger.system_account(session, AccountKind.SANDBOX_FUNDING, currency, mode, now)
    wallet = await ledger.open_account(
        session, owner=ledger.owner_key(client_id=client_id), kind=kind, currency=currency, mode=mode,
        client_id=client_id, now=now,
    )  # fmt: skip
    await ledger.post_journal(
        session, [ledger.Leg(funding.id, -amount, currency), ledger.Leg(wallet.id, amount, currency)],
        kind="test_funding", description=description, mode=mode, now=now, client_id=client_id,
    )  # fmt: skip
    return wallet


async def wallet_balances(
    session: AsyncSession, client_id: uuid.UUID, *, now: datetime, mode: str = "test"
) -> tuple[tuple[int, int], tuple[int, int]]:
    """(balance, held) in cents of the merchant's payments wallet, then of its service wallet."""
    found = []
    for kind in (AccountKind.PAYMENTS_WALLET, AccountKind.SERVICE_WALLET):
        wallet = await ledger.merchant_wallet(session, client_id, kind, CURRENCY, mode, now)
        balance, available = await ledger.balance_of(session, wallet.id)
        found.append((balance, balance - available))
    return found[0], found[1]


async def make_merchant(
    db: Database,
    tag: str,
    *,
    now: datetime | None = None,
    service_funds: int = 0,
    payments_funds: int = 0,
    funded_modes: tuple[str, ...] = ("test",),
    phone: str = "+254700000009",  # not one of the Daraja simulator's scripted phones
) -> Merchant:
    """Merchant ``tag`` with its API user (sandbox and live keys, Basic pair), in one transaction;
    ``service_funds``/``payments_funds`` cents put in its wallets of each ``funded_modes``."""
    now = now or SystemClock().now()
    async with db.transaction() as session:
        client = await make_client(session, tag, now=now)
        made = await make_api_user(session, client, tag, now=now, phone=phone)
        for mode in funded_modes:
            for kind, amount in (
                (AccountKind.SERVICE_WALLET, service_funds),
                (AccountKind.PAYMENTS_WALLET, payments_funds),
            ):
                if amount:
                    await make_funded_wallet(session, client.id, amount, now=now, kind=kind, mode=mode)
    return made


# -- channels, customers, portal users ------------------------------------------------------


async def make_channel(
    session: AsyncSession,
    client_id: uuid.UUID,
    *,
    now: datetime,
    mode: str = "test",
    channel_type: str = "paybill",
    short_code: str = "522522",
    account_number: str | None = None,
    description: str = "Paybill",
) -> PaymentChannel:
    """A payment channel of the merchant, as its API would open it."""
    return await collections.create_channel(
        session, collections.acting_for(client_id, mode), channel_type=channel_type, short_code=short_code,
        account_number=account_number, description=description, now=now,
    )  # fmt: skip


@dataclass(frozen=True)
class MadeCustomer:
    customer: Customer
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return bearer(self.token)


async def make_customer(
    session: AsyncSession,
    client: Client,
    *,
    now: datetime,
    secret: str,
    mode: KeyMode = KeyMode.TEST,
    email: str | None = None,
    password: str = PASSWORD,
    full_name: str = "Wanjiru Kamau",
) -> MadeCustomer:
    """A wallet customer of ``client`` in ``mode`` and a token signed with ``secret``
    (the settings' ``secret_key``), as registering and signing in would give."""
    customer = await customers.create_customer(
        session, client=client, mode=mode, email=email or f"{uuid.uuid4().hex[:10]}@example.com",
        password=password, full_name=full_name, now=now,
    )  # fmt: skip
    return MadeCustomer(customer, customers.issue_customer_token(customer, secret=secret, now=now).token)


async def make_portal_user(
    session: AsyncSession,
    email: str,
    *,
    role: str,
    now: datetime,
    client_id: uuid.UUID | None = None,
    password: str = PASSWORD,
) -> PortalUser:
    """A portal user with ``role``: a merchant's (``client_id``) or operator staff (None)."""
    roles = await identity.ensure_system_roles(session, now)
    return await identity.create_portal_user(
        session, email=email, user_name=email.split("@")[0], password=password, roles=[roles[role]],
        client_id=client_id, now=now,
    )  # fmt: skip


async def make_operator(
    session: AsyncSession,
    *,
    now: datetime,
    email: str = "ops@malipo.example",
    role: str = "CompanyAdmin",
    password: str = PASSWORD,
) -> PortalUser:
    """Operator staff (``CompanyAdmin`` or ``SuperAdmin``): a portal user of no client."""
    return await make_portal_user(session, email, role=role, now=now, password=password)
