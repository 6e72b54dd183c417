"""A collection queued for T-Kash before intake refused it has no rail to push it:
its send job ends it NOT_SENT (the "never pushed" ending: the held fee released, the ledger
balanced, the merchant told) and logs why, instead of failing on every retry; one left SENT by an
earlier run ends the same way at its last reconcile query."""

from __future__ import annotations

import uuid
from datetime import datetime

import pytest
import structlog
from sqlalchemy import select, update

from malipo.collections import service as collections
from malipo.collections.models import Collection, CollectionStatus
from malipo.collections.tasks import MAX_QUERIES
from malipo.config import Settings
from malipo.core.clock import FrozenClock
from malipo.db import Database
from malipo.ledger import service as ledger
from malipo.webhooks.models import WebhookDelivery
from malipo.worker.models import Job, JobStatus
from malipo.worker.registry import enqueue, load_job_modules
from malipo.worker.runner import Worker
from tests.factories import make_client, make_funded_wallet, wallet_balances

PAYER = "0712345678"

load_job_modules()


async def _queued_without_a_rail(
    db: Database, settings: Settings, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch, network_code: str
) -> tuple[uuid.UUID, uuid.UUID]:
    """(client id, collection id) of a collection on ``network_code`` queued as before intake refused it."""
    # Intake's refusal bypassed: the row is what an older malipo queued.
    monkeypatch.setattr("malipo.collections.service.intake.require_served_network", lambda code: None)
    now = clock.now()
    async with db.transaction() as session:
        client = await make_client(session, f"norail-{network_code}", now=now)
        await make_funded_wallet(session, client.id, 100_00, now=now)
        who = collections.acting_for(client.id, "test")
        wanted = collections.CollectionRequest(
            amount=100, phone_number=PAYER, network_code=network_code, callback_url="https://shop.example/cb"
        )
        collection, created = await collections.request_collection(
            session, who, wanted, settings=settings, now=now
        )
        assert created
        assert collection.network_code == network_code
        _payments, (_balance, fee_held) = await wallet_balances(session, client.id, now=now)
        assert fee_held > 0, "the fee is held while it is queued"
    return client.id, collection.id


async def _run_due_jobs(db: Database, settings: Settings, clock: FrozenClock) -> list[dict[str, object]]:
    worker = Worker(db, settings, clock=clock)
    try:
        with structlog.testing.capture_logs() as events:
            assert await worker.run_once() >= 1
    finally:
        await worker.aclose()
    return events


async def _assert_ended_not_sent(
    db: Database, client_id: uuid.UUID, collection_id: uuid.UUID, now: datetime
) -> None:
    async with db.transaction() as session:
        collection = await session.get(Collection, collection_id)
        assert collection is not None
        assert (collection.status, collection.result_code) == (CollectionStatus.FAILED, collections.NOT_SENT)
        assert collection.result_desc == collections.NOT_SENT_DESC
        payments, service = await wallet_balances(session, client_id, now=now)
        assert payments == (0, 0), "nothing credited"
        assert service == (100_00, 0), "the fee's hold is released"
        assert await ledger.verify_ledger(session) == []
        [delivery] = (await session.scalars(select(WebhookDelivery))).all()
        assert delivery.client_id == client_id, "the merchant is told, as for any failed collection"
        jobs = (await session.scalars(select(Job))).all()
    assert all(job.status != JobStatus.DEAD and job.attempts <= 1 for job in jobs), [
        (job.kind, job.status, job.attempts) for job in jobs
    ]


@pytest.mark.parametrize("network_code", ["63907"])
async def test_the_send_job_ends_a_collection_without_a_rail_as_not_sent(
    db: Database, settings: Settings, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch, network_code: str
) -> None:
    client_id, collection_id = await _queued_without_a_rail(db, settings, clock, monkeypatch, network_code)

    events = await _run_due_jobs(db, settings, clock)

    await _assert_ended_not_sent(db, client_id, collection_id, clock.now())
    async with db.transaction() as session:
        [send] = (await session.scalars(select(Job).where(Job.kind == collections.SEND_JOB))).all()
        assert send.status == JobStatus.SUCCEEDED, "ended, not retried"
        reconciles = (await session.scalars(select(Job).where(Job.kind == collections.RECONCILE_JOB))).all()
        assert reconciles == [], "nothing to ask a rail about"
    [why] = [e for e in events if e["event"] == "collection.no_rail"]
    assert why["collection_id"] == str(collection_id)
    assert why["network_code"] == network_code
    assert "not available yet" in str(why["reason"])


async def test_a_collection_without_a_rail_left_sent_ends_not_sent_at_its_last_query(
    db: Database, settings: Settings, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    client_id, collection_id = await _queued_without_a_rail(db, settings, clock, monkeypatch, "63907")
    async with db.transaction() as session:
        # As an earlier run left it: claimed and stamped, its push refused for want of a rail.
        await session.execute(
            update(Collection)
            .where(Collection.id == collection_id)
            .values(status=CollectionStatus.SENT, sent_at=clock.now())
        )
        await session.execute(
            update(Job).where(Job.kind == collections.SEND_JOB).values(status=JobStatus.SUCCEEDED)
        )
        payload = {"collection_id": str(collection_id), "query": MAX_QUERIES}
        enqueue(session, collections.RECONCILE_JOB, payload, now=clock.now())

    events = await _run_due_jobs(db, settings, clock)

    await _assert_ended_not_sent(db, client_id, collection_id, clock.now())
    assert [e["event"] for e in events if e["event"] == "collection.no_rail"] == ["collection.no_rail"]
