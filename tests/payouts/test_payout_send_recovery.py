"""A payout's status query is queued in the same transaction that marks it sent, before the call:
a worker that dies mid-send (the request gone out or not) leaves a payout the query settles,
never one left SENT with nothing to ask about it."""

from __future__ import annotations

from sqlalchemy import select

from malipo.payouts.models import Payout
from malipo.payouts.service import RECONCILE_JOB
from malipo.providers.daraja.client import B2C_PATH
from malipo.worker.models import Job
from tests.fixtures.world import Faults, Sim, StartMalipo, eventually, final_payout, fund_payments

PAID = "254711222333"


async def test_the_status_query_is_queued_before_the_payout_is_sent(
    start_malipo: StartMalipo, faulty_sim: tuple[Sim, Faults]
) -> None:
    sim, gate = faulty_sim
    gate.held.add(B2C_PATH)  # the worker waits for M-Pesa's reply
    gate.limit = 120.0
    world = await start_malipo(sim=sim)
    await fund_payments(world, 1_000_00)
    reply = await world.http.post(
        "/api/v2/withdraw", headers=world.a.headers,
        json={"amount": 100, "phone_number": PAID, "network_code": "63902", "channel": "mobile"},
    )  # fmt: skip
    assert reply.status_code == 201, reply.text
    reference = reply.json()["merchant_reference"]

    async def in_flight() -> list[Job] | None:
        async with world.db.transaction() as session:
            payout = await session.scalar(select(Payout).where(Payout.reference == reference))
            assert payout is not None
            queries = (await session.scalars(select(Job).where(Job.kind == RECONCILE_JOB))).all()
        if payout.status != "SENT" or payout.originator_conversation_id not in sim.sim.b2c_payments:
            return None
        return [q for q in queries if q.payload.get("payout_id") == str(payout.id)]

    queries = await eventually(in_flight, "the payout to be sent and waiting for M-Pesa's reply", 30)
    assert len(queries) == 1, "its status query is queued while the send has not returned"
    gate.release.set()
    assert (await final_payout(world, reference, timeout=30)).status == "SUCCESS"
    async with world.db.transaction() as session:
        payout = await session.scalar(select(Payout).where(Payout.reference == reference))
        assert payout is not None
        queries = (await session.scalars(select(Job).where(Job.kind == RECONCILE_JOB))).all()
    assert len([q for q in queries if q.payload.get("payout_id") == str(payout.id)]) == 1, "asked once"
    await world.verify_ledger()
