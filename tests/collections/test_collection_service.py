"""Collection rules on a database session, without servers: the fee is held on request, a
success credits the payments wallet and takes the fee, a failure releases it, a repeated answer
changes nothing, and the merchant's callback is rendered from the collection when delivered."""

from __future__ import annotations

from datetime import datetime

import pytest
from sqlalchemy import select

from malipo.api.payhero import mappers
from malipo.collections import service as collections
from malipo.collections.models import CollectionStatus
from malipo.config import Settings
from malipo.core.clock import FrozenClock
from malipo.core.money import Money
from malipo.db import Database
from malipo.ledger import service as ledger
from malipo.ledger.models import AccountKind
from malipo.webhooks import service as webhooks
from malipo.webhooks.models import WebhookDelivery
from malipo.worker.registry import load_job_modules
from tests.factories import make_client, make_funded_wallet

PAYER = "0712345678"

load_job_modules()  # the jobs a request and a callback queue must be known


async def _balances(session: object, client_id: object, now: datetime) -> dict[str, tuple[int, int]]:
    found = {}
    for kind in (AccountKind.PAYMENTS_WALLET, AccountKind.SERVICE_WALLET):
        wallet = await ledger.merchant_wallet(session, client_id, kind, "KES", "test", now)  # type: ignore[arg-type]
        balance, available = await ledger.balance_of(session, wallet.id)
        found[kind.value] = (balance, balance - available)  # (balance, held)  # type: ignore[arg-type]
    return found


async def test_a_success_credits_the_payments_wallet_and_takes_the_held_fee_once(
    db: Database, settings: Settings, clock: FrozenClock
) -> None:
    now = clock.now()
    async with db.transaction() as session:
        client = await make_client(session, "svc-ok", now=now)
        await make_funded_wallet(session, client.id, 100_00, now=now)
        who = collections.acting_for(client.id, "test")
        fee = await collections.collection_fee(session, settings, client.id, Money(250_00, "KES"))
        wanted = collections.CollectionRequest(
            amount=250, phone_number=PAYER, callback_url="https://shop.example/cb"
        )
        collection, created = await collections.request_collection(
            session, who, wanted, settings=settings, now=now
        )
        assert created
        assert collection.phone == "254712345678", "stored as Daraja wants it: no plus"
        held = await _balances(session, client.id, now)
        assert held[AccountKind.SERVICE_WALLET.value] == (100_00, fee.amount), "the fee is held, not taken"

        success = collections.Outcome(0, "The service request is processed successfully.", "RCPT0001")
        assert await collections.finish(session, collection, success, now=now)
        assert not await collections.finish(session, collection, success, now=now), "a repeat changes nothing"
        after = await _balances(session, client.id, now)
        assert after[AccountKind.PAYMENTS_WALLET.value] == (250_00, 0)
        assert after[AccountKind.SERVICE_WALLET.value] == (100_00 - fee.amount, 0)
        collection = await collections.find_by_reference(session, who, collection.reference)
        assert collection.status == CollectionStatus.SUCCESS
        assert await ledger.verify_ledger(session) == []

        [delivery] = (await session.scalars(select(WebhookDelivery))).all()
        bodies = await webhooks.render_bodies(session, {delivery.id: delivery.payload})
    assert bodies[delivery.id] == mappers.collection_callback(collection)
    assert bodies[delivery.id]["response"]["Amount"] == 250
    assert bodies[delivery.id]["response"]["Phone"] == "+254712345678"


async def test_a_failure_releases_the_fee_and_credits_nothing(
    db: Database, settings: Settings, clock: FrozenClock
) -> None:
    now = clock.now()
    async with db.transaction() as session:
        client = await make_client(session, "svc-fail", now=now)
        await make_funded_wallet(session, client.id, 100_00, now=now)
        who = collections.acting_for(client.id, "test")
        wanted = collections.CollectionRequest(amount=100, phone_number=PAYER)
        collection, _created = await collections.request_collection(
            session, who, wanted, settings=settings, now=now
        )
        assert await collections.finish(session, collection, collections.Outcome(1032, "Cancelled"), now=now)
        after = await _balances(session, client.id, now)
    assert after[AccountKind.PAYMENTS_WALLET.value] == (0, 0)
    assert after[AccountKind.SERVICE_WALLET.value] == (100_00, 0)


async def test_a_fee_the_service_wallet_cannot_cover_refuses_the_request_and_writes_nothing(
    db: Database, settings: Settings, clock: FrozenClock
) -> None:
    now = clock.now()
    async with db.transaction() as session:
        client = await make_client(session, "svc-poor", now=now)
        who = collections.acting_for(client.id, "test")
        wanted = collections.CollectionRequest(amount=100, phone_number=PAYER, external_reference="POOR-1")
        with pytest.raises(collections.ServiceWalletTooLow):
            await collections.request_collection(session, who, wanted, settings=settings, now=now)
        with pytest.raises(collections.CollectionNotFound):
            await collections.find_by_reference(session, who, "POOR-1")


@pytest.mark.parametrize("network_code", ["63907"])
async def test_a_network_without_a_connector_is_refused_before_anything_is_held(
    db: Database, settings: Settings, clock: FrozenClock, network_code: str
) -> None:
    now = clock.now()
    async with db.transaction() as session:
        client = await make_client(session, f"svc-{network_code}", now=now)
        await make_funded_wallet(session, client.id, 100_00, now=now)
        who = collections.acting_for(client.id, "test")
        wanted = collections.CollectionRequest(amount=100, phone_number=PAYER, network_code=network_code)
        with pytest.raises(collections.NetworkNotAvailable) as refused:
            await collections.request_collection(session, who, wanted, settings=settings, now=now)
        assert [e.field for e in refused.value.errors] == ["network_code"]
        assert (await _balances(session, client.id, now))[AccountKind.SERVICE_WALLET.value] == (100_00, 0)
