"""Payout rules on a database session, without servers: the amount and the fee are held before
anything is sent, a success settles both once, a failure releases both, and a request for more
than the payments wallet holds is refused with nothing held."""

from __future__ import annotations

from datetime import datetime

import pytest
from sqlalchemy import select

from malipo.api.payhero import mappers
from malipo.collections import service as collections
from malipo.config import Settings
from malipo.core.clock import FrozenClock
from malipo.db import Database
from malipo.ledger import service as ledger
from malipo.ledger.models import AccountKind
from malipo.payouts import service as payouts
from malipo.payouts.models import PayoutStatus
from malipo.providers.base import PayoutOutcome, PayoutStatusAnswer, Status
from malipo.webhooks import service as webhooks
from malipo.webhooks.models import WebhookDelivery
from malipo.worker.models import Job
from malipo.worker.registry import load_job_modules
from tests.factories import make_client, make_funded_wallet

PHONE = "0712345678"

load_job_modules()  # the jobs a request and a callback queue must be known


async def _wallets(
    session: object, client_id: object, now: datetime
) -> tuple[tuple[int, int], tuple[int, int]]:
    """(balance, held) of the payments wallet and of the service wallet."""
    found = []
    for kind in (AccountKind.PAYMENTS_WALLET, AccountKind.SERVICE_WALLET):
        wallet = await ledger.merchant_wallet(session, client_id, kind, "KES", "test", now)  # type: ignore[arg-type]
        balance, available = await ledger.balance_of(session, wallet.id)  # type: ignore[arg-type]
        found.append((balance, balance - available))
    return found[0], found[1]


async def _funded(session: object, tag: str, now: datetime) -> object:
    client = await make_client(session, tag, now=now)  # type: ignore[arg-type]
    await make_funded_wallet(session, client.id, 1_000_00, now=now, kind=AccountKind.PAYMENTS_WALLET)  # type: ignore[arg-type]
    await make_funded_wallet(session, client.id, 100_00, now=now)  # type: ignore[arg-type]
    return client


def _asked(amount: int, **extra: object) -> payouts.PayoutRequest:
    return payouts.PayoutRequest(
        amount=amount, channel="mobile", network_code="63902", phone_number=PHONE, **extra
    )  # type: ignore[arg-type]


async def test_a_payout_holds_both_then_settles_them_once(
    db: Database, settings: Settings, clock: FrozenClock
) -> None:
    now = clock.now()
    async with db.transaction() as session:
        client = await _funded(session, "po-ok", now)
        who = collections.acting_for(client.id, "test")
        payout, created = await payouts.request_payout(
            session, who, _asked(300, callback_url="https://shop.example/cb"), settings=settings, now=now
        )
        assert created
        fee = payout.fee
        assert await _wallets(session, client.id, now) == ((1_000_00, 300_00), (100_00, fee))

        done = payouts.Outcome(0, "ok", "TX0001", "AG_1")
        assert await payouts.finish(session, payout, done, now=now)
        assert not await payouts.finish(session, payout, done, now=now), "a repeated result changes nothing"
        assert payout.status == PayoutStatus.SUCCESS
        assert await _wallets(session, client.id, now) == ((700_00, 0), (100_00 - fee, 0))
        assert await ledger.verify_ledger(session) == []

        [delivery] = (await session.scalars(select(WebhookDelivery))).all()
        bodies = await webhooks.render_bodies(session, {delivery.id: delivery.payload})
    assert bodies[delivery.id] == mappers.payout_callback(payout)
    assert bodies[delivery.id]["amount"] == 300


async def test_a_failed_payout_releases_both_holds(
    db: Database, settings: Settings, clock: FrozenClock
) -> None:
    now = clock.now()
    async with db.transaction() as session:
        client = await _funded(session, "po-fail", now)
        who = collections.acting_for(client.id, "test")
        payout, _created = await payouts.request_payout(session, who, _asked(200), settings=settings, now=now)
        assert await payouts.finish(
            session, payout, payouts.Outcome(2001, "The initiator is invalid"), now=now
        )
        assert await _wallets(session, client.id, now) == ((1_000_00, 0), (100_00, 0))


async def test_more_than_the_payments_wallet_holds_is_refused_and_nothing_is_held(
    db: Database, settings: Settings, clock: FrozenClock
) -> None:
    now = clock.now()
    async with db.transaction() as session:
        client = await _funded(session, "po-poor", now)
        who = collections.acting_for(client.id, "test")
        with pytest.raises(payouts.InsufficientBalance):
            await payouts.request_payout(session, who, _asked(2_000), settings=settings, now=now)
        assert await _wallets(session, client.id, now) == ((1_000_00, 0), (100_00, 0))


async def test_a_payout_the_rail_still_has_in_progress_is_never_failed(
    db: Database, settings: Settings, clock: FrozenClock
) -> None:
    """After every status query, an answer "in progress" keeps the holds and asks again: failing
    it would give the merchant back money the rail may still pay out."""
    now = clock.now()
    async with db.transaction() as session:
        client = await _funded(session, "po-tip", now)
        who = collections.acting_for(client.id, "test")
        payout, _created = await payouts.request_payout(session, who, _asked(300), settings=settings, now=now)
        held = await _wallets(session, client.id, now)
        undecided = PayoutOutcome(Status.FAILED, 1, "No completed payout at Airtel Money: in progress")
        last = payouts.MAX_STATUS_QUERIES
        for query in (last, last + 3):
            answer = PayoutStatusAnswer(completed=False, outcome=undecided, attempt=query, in_progress=True)
            await payouts.apply_status_answer(session, payout, answer, settings=settings, now=now)
        assert payout.status not in (PayoutStatus.FAILED, PayoutStatus.SUCCESS)
        assert await _wallets(session, client.id, now) == held
        asked_again = (await session.scalars(select(Job).where(Job.kind == payouts.RECONCILE_JOB))).all()
        assert len(asked_again) >= 2

        gone = PayoutStatusAnswer(completed=False, outcome=undecided, attempt=last)  # not found, last query
        await payouts.apply_status_answer(session, payout, gone, settings=settings, now=now)
        assert payout.status == PayoutStatus.FAILED
        assert await ledger.verify_ledger(session) == []
