"""A payout queued to T-Kash before intake refused it has no rail to send it: its
send job fails it (both holds released, the ledger balanced, the merchant's callback queued as for
any failed payout) and logs why, instead of leaving it SENT with the funds held."""

from __future__ import annotations

import uuid

import pytest
import structlog
from sqlalchemy import select, update

from malipo.collections import service as collections
from malipo.config import Settings
from malipo.core.clock import FrozenClock
from malipo.db import Database
from malipo.ledger import service as ledger
from malipo.ledger.models import AccountKind
from malipo.payouts import service as payouts
from malipo.payouts.models import Payout, PayoutStatus
from malipo.webhooks.models import WebhookDelivery
from malipo.worker.models import Job, JobStatus
from malipo.worker.registry import load_job_modules
from malipo.worker.runner import Worker
from tests.factories import make_client, make_funded_wallet, wallet_balances

PHONE = "0712345678"

load_job_modules()


async def _queued_without_a_rail(
    db: Database, settings: Settings, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch, network_code: str
) -> tuple[uuid.UUID, Payout]:
    """(client id, payout) of a payout to ``network_code`` queued as before intake refused it."""
    # Intake's refusal bypassed: the row is what an older malipo queued.
    monkeypatch.setattr(collections, "require_served_network", lambda code: None)
    now = clock.now()
    async with db.transaction() as session:
        client = await make_client(session, f"po-norail-{network_code}", now=now)
        await make_funded_wallet(session, client.id, 1_000_00, now=now, kind=AccountKind.PAYMENTS_WALLET)
        await make_funded_wallet(session, client.id, 100_00, now=now)
        who = collections.acting_for(client.id, "test")
        asked = payouts.PayoutRequest(
            amount=300, channel="mobile", network_code=network_code, phone_number=PHONE,
            callback_url="https://shop.example/cb",
        )  # fmt: skip
        payout, created = await payouts.request_payout(session, who, asked, settings=settings, now=now)
        assert created
        assert payout.network_code == network_code
        assert await wallet_balances(session, client.id, now=now) == (
            (1_000_00, 300_00),
            (100_00, payout.fee),
        )
    return client.id, payout


async def _run_due_jobs(db: Database, settings: Settings, clock: FrozenClock) -> list[dict[str, object]]:
    worker = Worker(db, settings, clock=clock)
    try:
        with structlog.testing.capture_logs() as events:
            assert await worker.run_once() == 1
    finally:
        await worker.aclose()
    return events


@pytest.mark.parametrize("network_code", ["63907"])
async def test_the_send_job_fails_a_payout_without_a_rail_and_releases_its_holds(
    db: Database, settings: Settings, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch, network_code: str
) -> None:
    client_id, payout = await _queued_without_a_rail(db, settings, clock, monkeypatch, network_code)
    now = clock.now()

    events = await _run_due_jobs(db, settings, clock)

    async with db.transaction() as session:
        failed = await session.get(Payout, payout.id)
        assert failed is not None
        assert (failed.status, failed.result_code) == (PayoutStatus.FAILED, payouts.NOT_SENT_FAILURE)
        assert "not available yet" in (failed.result_desc or "")
        assert await wallet_balances(session, client_id, now=now) == ((1_000_00, 0), (100_00, 0)), (
            "both holds released"
        )
        assert await ledger.verify_ledger(session) == []
        [delivery] = (await session.scalars(select(WebhookDelivery))).all()
        assert (delivery.client_id, delivery.event) == (client_id, "payout.failed")
        [send] = (await session.scalars(select(Job).where(Job.kind == payouts.SEND_JOB))).all()
        assert (send.status, send.attempts) == (JobStatus.SUCCEEDED, 1), "ended, not retried"
    [why] = [e for e in events if e["event"] == "payout.no_rail"]
    assert (why["reference"], why["network_code"]) == (payout.reference, network_code)
    assert "not available yet" in str(why["reason"])


async def test_a_status_query_about_a_payout_without_a_rail_ends_and_leaves_its_result_to_decide(
    db: Database, settings: Settings, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One sent before its network was refused may have been paid: the query job ends (nothing can
    ask), the payout stays SENT with its holds for its result, found by its token, to decide."""
    client_id, payout = await _queued_without_a_rail(db, settings, clock, monkeypatch, "63907")
    async with db.transaction() as session:
        await session.execute(update(Payout).where(Payout.id == payout.id).values(status=PayoutStatus.SENT))
        await session.execute(
            update(Job).where(Job.kind == payouts.SEND_JOB).values(status=JobStatus.SUCCEEDED)
        )
        payouts.schedule_reconcile(session, payout.id, 1, settings=settings, now=clock.now())
    clock.advance(settings.payout_query_after_seconds + 1)

    events = await _run_due_jobs(db, settings, clock)

    async with db.transaction() as session:
        still = await session.get(Payout, payout.id)
        assert still is not None
        assert still.status == PayoutStatus.SENT
        assert await wallet_balances(session, client_id, now=clock.now()) == (
            (1_000_00, 300_00),
            (100_00, payout.fee),
        )
        [query] = (await session.scalars(select(Job).where(Job.kind == payouts.RECONCILE_JOB))).all()
        assert (query.status, query.attempts) == (JobStatus.SUCCEEDED, 1), "ended, not retried"
    assert [e["reference"] for e in events if e["event"] == "payout.no_rail"] == [payout.reference]
