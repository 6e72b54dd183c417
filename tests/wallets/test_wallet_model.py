"""The wallet service against a plain in-memory model, by a Hypothesis state machine.

Top-ups, transfers and payments are called on the service functions directly (no
HTTP), each in its own transaction as a request would be. After every step each
wallet's balance, the merchant's payments wallet and the sandbox funding account
equal the model's; at the end the ledger verifies clean.
"""

from __future__ import annotations

import asyncio
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test
from sqlalchemy import select

from malipo.core.clock import FrozenClock
from malipo.core.errors import MalipoError
from malipo.core.money import Money
from malipo.customers import service as customers
from malipo.db import Database
from malipo.identity import service as identity
from malipo.identity.models import ClientStatus, ClientType, KeyMode
from malipo.identity.principals import Principal, PrincipalKind
from malipo.ledger import service as ledger
from malipo.ledger.models import AccountKind, LedgerAccount
from malipo.wallets import service as wallets
from malipo.wallets.schemas import PaymentIn, TopUpIn, TransferIn

CUSTOMERS = 3
REFERENCES = ("INV-1", "INV-2", "INV-3", "INV-4")
amounts = st.integers(min_value=1, max_value=20_000)  # minor units: up to KES 200.00


@dataclass(frozen=True)
class Seeded:
    """A database file with merchant A's customers and merchant B's one, to copy per example."""

    path: Path
    principals: tuple[Principal, ...]
    wallets: tuple[uuid.UUID, ...]
    stranger: uuid.UUID
    client_id: uuid.UUID


def _principal(customer: Any) -> Principal:
    return Principal(
        kind=PrincipalKind.CUSTOMER,
        id=customer.id,
        client_id=customer.client_id,
        role_ids=(),
        role_names=frozenset({"Customer"}),
        mode=KeyMode(customer.mode),
    )


async def _seed(url: str) -> tuple[tuple[Principal, ...], tuple[uuid.UUID, ...], uuid.UUID, uuid.UUID]:
    now = FrozenClock().now()
    db = Database.from_url(url)
    try:
        async with db.transaction() as session:
            made = []
            for tag in ("a", "b"):
                client = await identity.create_client(
                    session,
                    name=tag,
                    client_type=ClientType.COMPANY,
                    email=f"{tag}@example.com",
                    status=ClientStatus.ACTIVE,
                    now=now,
                )
                for n in range(CUSTOMERS if tag == "a" else 1):
                    made.append(
                        await customers.create_customer(
                            session,
                            client=client,
                            mode=KeyMode.TEST,
                            email=f"{tag}{n}@example.com",
                            password="correct horse battery",
                            full_name=None,
                            now=now,
                        )
                    )
        ours, stranger = made[:CUSTOMERS], made[CUSTOMERS]
        return (
            tuple(_principal(c) for c in ours),
            tuple(c.wallet_account_id for c in ours),
            stranger.id,
            ours[0].client_id,
        )
    finally:
        await db.dispose()


def _kes(minor: int) -> str:
    return Money(minor, "KES").format()


class WalletMachine(RuleBasedStateMachine):
    seeded: Seeded  # set by the test before running

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        copy = self.seeded.path.with_name(f"{uuid.uuid4().hex}.db")
        shutil.copyfile(self.seeded.path, copy)
        self.db = Database.from_url(f"sqlite+aiosqlite:///{copy}")
        self.clock = FrozenClock()
        self.balances = [0] * CUSTOMERS
        self.merchant = 0
        self.funded = 0
        self.paid: set[str] = set()

    def _run(self, operation: Any, who: int, body: Any) -> Exception | None:
        """One request's worth: the service call in its own transaction; the error it raised, if any."""

        async def call() -> None:
            async with self.db.transaction() as session:
                await operation(session, self.seeded.principals[who], body, now=self.clock.advance(1))

        try:
            self.loop.run_until_complete(call())
        except MalipoError as refused:
            return refused
        return None

    @rule(who=st.integers(0, CUSTOMERS - 1), amount=amounts)
    def top_up(self, who: int, amount: int) -> None:
        assert self._run(wallets.top_up, who, TopUpIn(amount=_kes(amount), description="top up")) is None
        self.balances[who] += amount
        self.funded += amount

    @rule(sender=st.integers(0, CUSTOMERS - 1), recipient=st.integers(0, CUSTOMERS - 1), amount=amounts)
    def transfer(self, sender: int, recipient: int, amount: int) -> None:
        body = TransferIn(
            recipient_customer_id=self.seeded.principals[recipient].id, amount=_kes(amount), description="t"
        )
        refused = self._run(wallets.transfer, sender, body)
        if sender == recipient:
            assert isinstance(refused, wallets.SelfTransfer)
        elif amount > self.balances[sender]:
            assert isinstance(refused, ledger.InsufficientFunds)
        else:
            assert refused is None
            self.balances[sender] -= amount
            self.balances[recipient] += amount

    @rule(sender=st.integers(0, CUSTOMERS - 1), amount=amounts)
    def transfer_to_another_merchants_customer(self, sender: int, amount: int) -> None:
        body = TransferIn(recipient_customer_id=self.seeded.stranger, amount=_kes(amount), description="t")
        assert isinstance(self._run(wallets.transfer, sender, body), wallets.UnknownRecipient)

    @rule(who=st.integers(0, CUSTOMERS - 1), amount=amounts, reference=st.sampled_from(REFERENCES))
    def pay(self, who: int, amount: int, reference: str) -> None:
        body = PaymentIn(amount=_kes(amount), description="invoice", external_reference=reference)
        refused = self._run(wallets.pay, who, body)
        if reference in self.paid:
            assert isinstance(refused, wallets.DuplicatePayment)
        elif amount > self.balances[who]:
            assert isinstance(refused, ledger.InsufficientFunds)
        else:
            assert refused is None
            self.balances[who] -= amount
            self.merchant += amount
            self.paid.add(reference)

    @invariant()
    def books_match_the_model(self) -> None:
        async def read() -> tuple[list[int], int, int]:
            async with self.db.transaction() as session:
                found = [(await ledger.balance_of(session, w))[0] for w in self.seeded.wallets]
                merchant = await session.scalar(
                    select(LedgerAccount.balance).where(
                        LedgerAccount.owner_key == ledger.owner_key(client_id=self.seeded.client_id),
                        LedgerAccount.kind == AccountKind.PAYMENTS_WALLET,
                    )
                )
                funding = await session.scalar(
                    select(LedgerAccount.balance).where(
                        LedgerAccount.owner_key == ledger.owner_key(client_id=self.seeded.client_id),
                        LedgerAccount.kind == AccountKind.SANDBOX_FUNDING,
                    )
                )
                return found, int(merchant or 0), int(funding or 0)

        assert self.loop.run_until_complete(read()) == (self.balances, self.merchant, -self.funded)

    def teardown(self) -> None:
        async def verify() -> list[str]:
            try:
                async with self.db.transaction() as session:
                    return await ledger.verify_ledger(session)
            finally:
                await self.db.dispose()

        try:
            assert self.loop.run_until_complete(verify()) == []
        finally:
            self.loop.close()


def test_wallets_match_a_plain_model(sqlite_databases: Any) -> None:
    url = sqlite_databases.new()  # SQLite is enough for the model; the HTTP tests cover PostgreSQL
    principals, wallet_ids, stranger, client_id = asyncio.run(_seed(url))
    WalletMachine.seeded = Seeded(Path(url.split("///", 1)[1]), principals, wallet_ids, stranger, client_id)
    run_state_machine_as_test(
        WalletMachine, settings=settings(max_examples=30, stateful_step_count=20, deadline=None)
    )
