"""The worker paces a large batch to what is sent: it holds and queues the next chunk only while
fewer than ``IN_FLIGHT_CHUNKS`` chunks' items wait to be sent or for M-Pesa's result (the batches
that do complete are the other tests')."""

from __future__ import annotations

import asyncio

from malipo.disbursements.service import IN_FLIGHT_CHUNKS
from tests.disbursements.helpers import PAID, batch, mobile, process, submit
from tests.fixtures.world import Faults, Sim, StartMalipo, eventually, fund_payments

CHUNK = 2
ITEMS = 20


async def test_a_batch_never_has_more_than_a_few_chunks_in_flight(
    start_malipo: StartMalipo, faulty_sim: tuple[Sim, Faults]
) -> None:
    sim, _gate = faulty_sim
    sim.sim.callback_delay = 3600.0  # M-Pesa pays, but its results do not come back
    world = await start_malipo(
        sim=sim, disbursement_inline_items=0, disbursement_chunk=CHUNK, payout_query_after_seconds=3600.0
    )
    await fund_payments(world, 100_000_00)
    body = (await submit(world, [mobile(PAID, 100 + n) for n in range(ITEMS)])).json()
    assert (await process(world, body["batchId"])).json()["queued"] == ITEMS
    cap = IN_FLIGHT_CHUNKS * CHUNK

    async def capped() -> dict[str, int] | None:
        counts: dict[str, int] = (await batch(world, body["batchId"]))["counts"]
        return counts if counts["processing"] >= cap else None

    counts = await eventually(capped, "the first chunks to be held and sent", timeout=60)
    assert counts == {"pending": ITEMS - cap, "processing": cap, "processed": 0, "failed": 0}
    for _ in range(10):  # the worker keeps looking, and holds no more while none settles
        await asyncio.sleep(0.2)
        assert (await batch(world, body["batchId"]))["counts"]["processing"] == cap

    await world.verify_ledger()  # the held items' amounts and fees are held, nothing else
    # Mid-flight the report ties too: nothing paid or charged yet, on either side.
    report = await world.http.get(
        f"/api/v1/reports/disbursements/batches/{body['batchId']}/reconciliation",
        params={"items": "none"}, headers=world.a.headers,
    )  # fmt: skip
    totals = report.json()["totals"]
    assert (totals["paid"], totals["fees"], totals["ledgerFees"], totals["ties"]) == (
        "0.00",
        "0.00",
        "0.00",
        True,
    )
