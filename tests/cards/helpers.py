"""What the card tests share: a merchant acting as its sandbox API key, the acquirer simulator in
process (on the test's clock), the ledger's balances the cards touch, and the test cards."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import parse_qs, urlsplit

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from malipo.core.clock import FrozenClock
from malipo.identity.models import KeyMode
from malipo.identity.principals import Principal, PrincipalKind
from malipo.ledger import service as ledger
from malipo.ledger.models import AccountKind
from malipo.providers.cardacq.client import CardAcquirerClient
from malipo.providers.cardacq.simulator import create_simulator_app
from tests.factories import make_api_user, make_client

CURRENCY = "KES"
VISA = "4242424242424242"
AMEX = "378282246310005"
DECLINED = "4000000000000002"  # 05 do not honour
NO_FUNDS = "4000000000009995"  # 51
LOST = "4000000000009987"  # 41
CHALLENGE = "4000000000003220"  # challenge, approved after 123456
CHALLENGE_THEN_DECLINED = "4000008400001629"
FRICTIONLESS = "4000000000003055"
LOOKUP_FAILS = "4000008400001280"
RIGHT_CODE = "123456"
_SIM_KEY = "card-service-tests"


async def make_merchant_key(session: AsyncSession, tag: str, *, now: datetime) -> Principal:
    client = await make_client(session, tag, now=now)
    merchant = await make_api_user(session, client, tag, now=now)
    return Principal(
        kind=PrincipalKind.API_KEY, id=merchant.api_user_id, client_id=client.id, role_ids=(),
        role_names=frozenset({"Developer"}), mode=KeyMode.TEST,
    )  # fmt: skip


@asynccontextmanager
async def simulated_acquirer(
    clock: FrozenClock,
) -> AsyncIterator[tuple[CardAcquirerClient, httpx.AsyncClient]]:
    """The acquirer simulator on ``clock``, served in process; the client and the HTTP client (for
    the ACS page, as the payer's browser)."""
    app = create_simulator_app(api_keys={_SIM_KEY}, clock=clock)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://acquirer.test") as http:
        yield CardAcquirerClient(base_url="http://acquirer.test", api_key=_SIM_KEY, http=http), http
    await app.state.simulator.aclose()


async def pass_challenge(http: httpx.AsyncClient, acs_url: str, code: str = RIGHT_CODE) -> str:
    """Answer the ACS page as the payer; the paRes it sends the browser back with."""
    page = await http.get(acs_url)
    assert page.status_code == 200, page.text
    answered = await http.post(acs_url, data={"code": code, "action": "verify"})
    assert answered.status_code == 303, answered.text
    return parse_qs(urlsplit(answered.headers["location"]).query)["paRes"][0]


@dataclass(frozen=True)
class CardBalances:
    payments: tuple[int, int]  # (balance, held)
    clearing: tuple[int, int]
    fee_revenue: int


async def card_balances(session: AsyncSession, client_id: uuid.UUID, now: datetime) -> CardBalances:
    wallet = await ledger.merchant_wallet(
        session, client_id, AccountKind.PAYMENTS_WALLET, CURRENCY, "test", now
    )
    clearing = await ledger.system_account(session, AccountKind.CARD_CLEARING, CURRENCY, "test", now)
    revenue = await ledger.system_account(session, AccountKind.FEE_REVENUE, CURRENCY, "test", now)
    found = []
    for account in (wallet.id, clearing.id, revenue.id):
        balance, available = await ledger.balance_of(session, account)
        found.append((balance, balance - available))
    return CardBalances(found[0], found[1], found[2][0])


async def assert_books_balance(session: AsyncSession) -> None:
    assert await ledger.verify_ledger(session) == []
