"""Payouts to Airtel Money phones (POST /api/v2/withdraw, network_code 63903) end to end through
the mounted Airtel simulator's disbursement API: paid at once, refused at once, in progress then
decided by the callback or by the enquiry; holds settled or released once; a mismatched callback
moves nothing."""

from __future__ import annotations

from typing import Any

import httpx

from malipo.providers.airtel.signing import callback_hash
from malipo.providers.registry import airtel_callback_path, airtel_simulator_callback_key
from tests.fixtures.world import (
    Mailbox,
    StartMalipo,
    World,
    active_holds,
    eventually,
    final_payout,
    fund_payments,
    payout_by_reference,
)

AIRTEL = "63903"
PAID = "254733123456"
INSUFFICIENT = "254733000011"
INVALID_NUMBER = "254733000012"
LATER_WITH_CALLBACK = "254733000013"
LATER_CALLBACK_LOST = "254733000014"
LATER_FAILED = "254733000015"
FEE = 15_00


async def _withdraw(world: World, amount: int, phone: str, **extra: Any) -> httpx.Response:
    body = {"amount": amount, "phone_number": phone, "network_code": AIRTEL, "channel": "mobile", **extra}
    return await world.http.post("/api/v2/withdraw", json=body, headers=world.a.headers)


async def _reference(world: World, amount: int, phone: str, **extra: Any) -> str:
    reply = await _withdraw(world, amount, phone, **extra)
    assert reply.status_code == 201, reply.text
    return str(reply.json()["merchant_reference"])


async def test_a_payout_to_an_airtel_phone_is_paid_settled_and_told(world: World, mailbox: Mailbox) -> None:
    await fund_payments(world, 1_000_00)
    before = await world.balances()
    reference = await _reference(world, 200, PAID, external_reference="AIR-OUT-1", callback_url=mailbox.url)

    payout = await final_payout(world, reference)
    assert payout.status == "SUCCESS"
    disbursement = world.airtel.disbursements[payout.originator_conversation_id]
    assert (disbursement.msisdn, disbursement.amount, disbursement.currency) == ("733123456", 200, "KES")
    assert payout.transaction_id == disbursement.receipt
    [callback] = await mailbox.wait_for(1)
    assert (callback["status"], callback["amount"], callback["provider_reference"]) == (
        "success", 200, payout.transaction_id,
    )  # fmt: skip
    assert callback["external_reference"] == "AIR-OUT-1"

    after = await world.balances()
    assert after.payments == (before.payments[0] - 200_00, 0)
    assert after.service == (before.service[0] - FEE, 0)
    assert after.fee_revenue == before.fee_revenue + FEE
    assert after.clearing == before.clearing + 200_00
    assert await active_holds(world) == 0
    await world.verify_ledger()


async def test_refused_airtel_payouts_release_their_holds(world: World, mailbox: Mailbox) -> None:
    await fund_payments(world, 1_000_00)
    before = await world.balances()
    references = [await _reference(world, 100, phone, callback_url=mailbox.url)
                  for phone in (INSUFFICIENT, INVALID_NUMBER)]  # fmt: skip
    finished = [await final_payout(world, reference) for reference in references]
    assert [p.status for p in finished] == ["FAILED", "FAILED"]
    assert [p.result_code for p in finished] == [1, 1]
    assert "Insufficient funds (DP00900001007)" in (finished[0].result_desc or "")
    assert "Invalid mobile number" in (finished[1].result_desc or "")
    callbacks = await mailbox.wait_for(2)
    assert sorted(c["status"] for c in callbacks) == ["failed", "failed"]
    after = await world.balances()
    assert (after.payments, after.service, after.fee_revenue) == (
        before.payments, before.service, before.fee_revenue,
    )  # fmt: skip
    assert await active_holds(world) == 0
    await world.verify_ledger()


async def test_payouts_in_progress_are_decided_by_the_callback(world: World) -> None:
    await fund_payments(world, 1_000_00)
    before = await world.balances()
    paid = await _reference(world, 100, LATER_WITH_CALLBACK)
    failed = await _reference(world, 100, LATER_FAILED)
    assert (await final_payout(world, paid)).status == "SUCCESS"
    assert (await final_payout(world, failed)).status == "FAILED"

    async def both_delivered() -> bool:  # malipo answers once it has committed: a moment after
        return sum(d.delivered for d in world.airtel.deliveries) == 2

    await eventually(both_delivered, "both callbacks recorded as delivered by the simulator")
    assert world.airtel.requests["disbursement_status"] == 0
    after = await world.balances()
    assert after.payments == (before.payments[0] - 100_00, 0)
    assert await active_holds(world) == 0
    await world.verify_ledger()


async def test_a_payout_whose_callback_is_lost_is_settled_by_the_enquiry(start_malipo: StartMalipo) -> None:
    world = await start_malipo(payout_query_after_seconds=0.1)
    await fund_payments(world, 500_00)
    reference = await _reference(world, 300, LATER_CALLBACK_LOST)
    payout = await final_payout(world, reference)
    assert payout.status == "SUCCESS"
    assert payout.transaction_id == world.airtel.disbursements[payout.originator_conversation_id].receipt
    assert world.airtel.requests["disbursement_status"] >= 1
    assert world.airtel.deliveries == []
    assert (await world.balances()).payments == (200_00, 0)
    await world.verify_ledger()


async def test_a_mismatched_payout_callback_moves_nothing(world: World) -> None:
    await fund_payments(world, 500_00)
    reference = await _reference(world, 300, LATER_CALLBACK_LOST)
    payout = await payout_by_reference(world, reference)

    async def sent() -> bool:
        return (await payout_by_reference(world, reference)).status == "SENT"

    await eventually(sent, "the payout to be sent")
    path = airtel_callback_path(world.settings, simulator=True)
    key = airtel_simulator_callback_key(world.settings)
    transaction = {"id": payout.originator_conversation_id, "status_code": "TS", "amount": 3000,
                   "message": "forged", "airtel_money_id": "CI000000.0000.X00000"}  # fmt: skip
    unsigned = await world.http.post(path, json={"transaction": transaction})
    assert unsigned.status_code == 401, "the simulator's address takes signed callbacks only"
    assert (await payout_by_reference(world, reference)).status == "SENT"
    reply = await world.http.post(
        path, json={"transaction": transaction, "hash": callback_hash(transaction, key)}
    )
    assert reply.status_code == 200, reply.text
    held = await payout_by_reference(world, reference)
    assert held.status == "REVIEW", "paid, but not what was asked: both holds kept for an operator"
    assert held.journal_id is None
    assert await active_holds(world) == 2
    nothing = {"id": "no-such-payout", "status_code": "TF"}
    unknown = {"transaction": nothing, "hash": callback_hash(nothing, key)}
    assert (await world.http.post(path, json=unknown)).status_code == 404
    await world.verify_ledger()
