"""A worker SIGKILLed in the middle of a batch (a real process): the batch resumes in another
worker and no item is paid twice.

The worker is killed after it committed at least one chunk and while payouts it sent wait for
M-Pesa's reply (held back): Daraja's results reach the web process, the second worker takes over
the killed one's jobs after their lease, and status queries settle what the first never heard
about. Every item ends once; the simulator paid exactly the Processed items; the books balance."""

from __future__ import annotations

import signal
import subprocess
import uuid
from pathlib import Path

import pytest
from sqlalchemy import func, select

from malipo.disbursements.models import DisbursementItem, ItemStatus
from malipo.payouts.models import Payout
from malipo.providers.daraja.client import B2C_PATH
from tests.disbursements.helpers import BATCHES, FEE, PAID, items, mobile, process, settled, submit
from tests.fixtures.world import Faults, Sim, StartMalipo, World, active_holds, eventually, fund_payments
from tests.worker.test_worker_killed import _stop, _worker

ITEMS = 30
CHUNK = 5


async def _count(world: World, batch_id: str, status: ItemStatus) -> int:
    async with world.db.transaction() as session:
        return int(
            await session.scalar(
                select(func.count())
                .select_from(DisbursementItem)
                .where(DisbursementItem.batch_id == uuid.UUID(batch_id), DisbursementItem.status == status)
            )
            or 0
        )


@pytest.mark.slow
async def test_a_worker_killed_mid_batch_resumes_without_paying_twice(
    start_malipo: StartMalipo, faulty_sim: tuple[Sim, Faults], tmp_path: Path
) -> None:
    sim, gate = faulty_sim
    gate.held.add(B2C_PATH)  # M-Pesa takes each payment, but the worker never hears its reply
    gate.limit = 300.0
    # Four connections: four payments go out and their replies never come, so the sends after them
    # wait and the batch cannot finish before the worker is killed (its results still arrive).
    env = {"MALIPO_DISBURSEMENT_CHUNK": str(CHUNK), "MALIPO_PAYOUT_QUERY_AFTER_SECONDS": "0.5",
           "MALIPO_RAIL_BALANCE_INTERVAL_SECONDS": "0", "MALIPO_RECONCILIATION_DAILY": "false",
           "MALIPO_HTTP_CONNECTIONS": "4"}  # fmt: skip
    world = await start_malipo(
        sim=sim, inprocess_worker=False, disbursement_inline_items=0, disbursement_chunk=CHUNK,
        payout_query_after_seconds=0.5,
    )  # fmt: skip
    await fund_payments(world, 100_000_00)
    before = await world.balances()
    body = (await submit(world, [mobile(PAID, 100 + n) for n in range(ITEMS)])).json()
    batch_id = body["batchId"]
    assert (await process(world, batch_id)).json()["queued"] == ITEMS

    first = _worker(world, tmp_path, "first", **env)
    second: subprocess.Popen[bytes] | None = None
    try:

        async def mid_batch() -> bool:
            assert first.poll() is None, (tmp_path / "first.log").read_text()[-3000:]
            return len(sim.sim.b2c_payments) >= 2 and await _count(world, batch_id, ItemStatus.PENDING) > 0

        await eventually(mid_batch, "the first worker to pay part of the batch", timeout=180)
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
        assert await _count(world, batch_id, ItemStatus.PENDING) > 0, "killed before the batch was done"
        gate.release.set()

        second = _worker(world, tmp_path, "second", **env)
        done = await settled(world, batch_id, timeout=300)
        # A payout the killed worker marked sent but never sent fails (the rail never had it):
        # retried, it is paid once.
        failed = [item.id for item in await items(world, batch_id) if item.status == ItemStatus.FAILED]
        if failed:
            retry = await world.http.post(
                f"{BATCHES}/{batch_id}/retry",
                json={"batchId": batch_id, "itemIds": [str(i) for i in failed]},
                headers=world.a.headers | {"Idempotency-Key": "retry-after-kill"},
            )  # fmt: skip
            assert retry.status_code == 200, retry.text
            done = await settled(world, batch_id, timeout=300)
        assert done["counts"] == {"pending": 0, "processing": 0, "processed": ITEMS, "failed": 0}

        async def quiet() -> bool:
            return await active_holds(world) == 0

        await eventually(quiet, "every hold to be settled or released", timeout=60)
    finally:
        _stop(first)
        if second is not None:
            _stop(second)

    rows = await items(world, batch_id)
    async with world.db.transaction() as session:
        payouts = {p.id: p for p in await session.scalars(select(Payout))}
    paid_ids = {payouts[row.payout_id].originator_conversation_id for row in rows if row.payout_id}
    assert len(paid_ids) == ITEMS
    succeeded = [p for p in sim.sim.b2c_payments.values() if p.transaction_id]
    assert sorted(p.originator_conversation_id for p in succeeded) == sorted(paid_ids), (
        "M-Pesa paid exactly the items' payouts, each once"
    )
    total = sum(100 + n for n in range(ITEMS))
    assert sum(p.amount for p in succeeded) == total
    after = await world.balances()
    assert after.payments == (before.payments[0] - total * 100, 0)
    assert after.service == (before.service[0] - ITEMS * FEE, 0)
    await world.verify_ledger()
    report = await world.http.get(
        f"/api/v1/reports/disbursements/batches/{batch_id}/reconciliation", headers=world.a.headers
    )
    assert report.json()["totals"]["ties"] is True
