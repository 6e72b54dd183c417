"""Payouts (POST /api/v2/withdraw) end to end: malipo, the Daraja simulator and the merchant's
callback endpoint over real HTTP. Funds are held before anything is sent, settled on success,
released on failure — never more than is there, never twice."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import select

from malipo.payouts.models import Payout
from tests.fixtures.world import Mailbox, World, active_holds, final_payout, fund_payments

PAID = "254711222333"
INITIATOR_INVALID = "254700000011"  # 2001
UTILITY_INSUFFICIENT = "254700000012"  # 1
QUEUE_TIMEOUT = "254700000014"  # QueueTimeOutURL only
RESULT_LOST = "254700000015"  # paid; only transaction status tells

FEE = 15_00  # the default payout fee, KES 15.00


async def _withdraw(world: World, amount: int, phone: str, **extra: Any) -> httpx.Response:
    body = {"amount": amount, "phone_number": phone, "network_code": "63902", "channel": "mobile", **extra}
    return await world.http.post("/api/v2/withdraw", json=body, headers=world.a.headers)


async def test_a_payout_holds_then_settles_and_tells_the_merchant(world: World, mailbox: Mailbox) -> None:
    await fund_payments(world, 1_000_00)
    before = await world.balances()
    reply = await _withdraw(world, 200, PAID, external_reference="PAYOUT-1", callback_url=mailbox.url)
    assert reply.status_code == 201, reply.text
    body = reply.json()
    assert body["status"] == "QUEUED"
    assert body["response_code"] == "0"
    assert body["external_reference"] == "PAYOUT-1"
    assert body["checkout_request_id"].endswith(body["conversation_id"])

    payout = await final_payout(world, body["merchant_reference"])
    assert payout.status == "SUCCESS"
    assert payout.transaction_id
    [callback] = await mailbox.wait_for(1)
    assert callback["success"] is True
    assert callback["status"] == "success"
    assert callback["transaction_type"] == "outbound_payment"
    assert callback["reference"] == payout.reference
    assert callback["external_reference"] == "PAYOUT-1"
    assert callback["amount"] == 200
    assert callback["provider_reference"] == payout.transaction_id

    after = await world.balances()
    assert after.payments == (before.payments[0] - 200_00, 0)
    assert after.service == (before.service[0] - FEE, 0)
    assert after.fee_revenue == before.fee_revenue + FEE
    assert after.clearing == before.clearing + 200_00, "the money left through M-Pesa clearing"
    assert await active_holds(world) == 0
    status = await world.status(payout.reference)
    assert status.status_code == 200
    assert status.json()["status"] == "SUCCESS"
    await world.verify_ledger()


async def test_failed_payouts_release_their_holds(world: World, mailbox: Mailbox) -> None:
    await fund_payments(world, 1_000_00)
    before = await world.balances()
    references = []
    for phone in (INITIATOR_INVALID, UTILITY_INSUFFICIENT, QUEUE_TIMEOUT):
        reply = await _withdraw(world, 100, phone, callback_url=mailbox.url)
        assert reply.status_code == 201, reply.text
        references.append(reply.json()["merchant_reference"])
    finished = [await final_payout(world, ref) for ref in references]
    assert {payout.result_code for payout in finished} == {2001, 1}
    assert [payout.status for payout in finished] == ["FAILED"] * 3
    callbacks = await mailbox.wait_for(3)
    assert sorted(c["status"] for c in callbacks) == ["failed"] * 3
    after = await world.balances()
    assert after.payments == before.payments
    assert after.service == before.service
    assert after.fee_revenue == before.fee_revenue
    assert await active_holds(world) == 0
    await world.verify_ledger()


async def test_a_payout_for_more_than_is_available_is_refused_and_holds_nothing(world: World) -> None:
    await fund_payments(world, 150_00)
    first = await _withdraw(world, 100, RESULT_LOST)  # its 100 stays held until Daraja answers
    assert first.status_code == 201
    before = await world.balances()
    reply = await _withdraw(world, 100, PAID)  # 50 left available
    assert reply.status_code == 400
    error = reply.json()
    assert error["error_code"] == "invalid_argument"
    assert error["status_code"] == 400
    assert "KES 50.00 available" in error["error_message"]
    assert await world.balances() == before
    async with world.db.transaction() as session:
        assert len((await session.scalars(select(Payout))).all()) == 1


async def test_a_lost_result_is_settled_by_a_transaction_status_query(start_malipo: Any) -> None:
    world = await start_malipo(payout_query_after_seconds=0.1)
    await fund_payments(world, 500_00)
    reply = await _withdraw(world, 300, RESULT_LOST)
    assert reply.status_code == 201
    payout = await final_payout(world, reply.json()["merchant_reference"])
    assert payout.status == "SUCCESS"
    assert payout.transaction_id
    assert (await world.balances()).payments == (200_00, 0)
    await world.verify_ledger()


async def test_repeats_and_bad_input(world: World) -> None:
    await fund_payments(world, 500_00)
    first = await _withdraw(world, 100, PAID, external_reference="ONCE")
    again = await _withdraw(world, 100, PAID, external_reference="ONCE")
    assert first.status_code == again.status_code == 201
    assert first.json()["merchant_reference"] == again.json()["merchant_reference"]
    for body, field in (
        ({"amount": 5}, "amount"),
        ({"phone_number": "12"}, "phone_number"),
        ({"network_code": "99999"}, "network_code"),
        ({"channel": "pigeon"}, "channel"),
    ):
        args: dict[str, Any] = {
            "amount": 100,
            "phone_number": PAID,
            "network_code": "63902",
            "channel": "mobile",
        }
        reply = await world.http.post("/api/v2/withdraw", json=args | body, headers=world.a.headers)
        assert reply.status_code == 400, (body, reply.text)
        assert field in reply.json()["error_message"]
    # Citibank has no M-Pesa paybill in the table: refused, nothing held.
    bank = await _withdraw(world, 100, PAID, channel="bank", network_code="16", account_number="1234567890")
    assert bank.status_code == 400
    assert "MALIPO_BANK_PAYBILLS" in bank.json()["error_message"]
    other = await world.http.get(
        "/api/v2/transaction-status", params={"reference": first.json()["merchant_reference"]},
        headers=world.b.headers,
    )  # fmt: skip
    assert other.status_code == 404
    async with world.db.transaction() as session:
        assert len((await session.scalars(select(Payout))).all()) == 1


async def test_an_idempotency_key_makes_a_retried_withdrawal_or_payment_happen_once(world: World) -> None:
    """Without an external_reference, a client's retry with the same Idempotency-Key replays the reply."""
    await fund_payments(world, 500_00)
    body = {"amount": 100, "phone_number": PAID, "network_code": "63902", "channel": "mobile"}
    headers = {**world.a.headers, "Idempotency-Key": "withdraw-retry-1"}
    first = await world.http.post("/api/v2/withdraw", json=body, headers=headers)
    again = await world.http.post("/api/v2/withdraw", json=body, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    other = await world.http.post("/api/v2/withdraw", json=body | {"amount": 200}, headers=headers)
    assert other.status_code == 400
    assert other.json()["error_code"] == "invalid_argument"

    pay = {"amount": 10, "phone_number": PAID}
    pay_headers = {**world.a.headers, "Idempotency-Key": "pay-retry-1"}
    paid = [await world.http.post("/api/v2/payments", json=pay, headers=pay_headers) for _ in range(2)]
    assert paid[0].json()["reference"] == paid[1].json()["reference"]
    async with world.db.transaction() as session:
        assert len((await session.scalars(select(Payout))).all()) == 1
    assert len(await world.collections()) == 1


async def test_the_transaction_list_shows_withdrawals_beside_collections_newest_first(world: World) -> None:
    collected = await world.queued(500, PAID)
    await world.final_status(collected)
    reply = await _withdraw(world, 200, PAID)
    assert reply.status_code == 201, reply.text
    withdrawn = reply.json()["merchant_reference"]
    failed = (await _withdraw(world, 100, INITIATOR_INVALID)).json()["merchant_reference"]
    await final_payout(world, withdrawn)
    await final_payout(world, failed)

    listed = (await world.http.get("/api/v2/transactions", headers=world.a.headers)).json()
    rows = [
        (t["transaction_reference"], t["transaction_type"], t["amount"], t["cost"], t["status"])
        for t in listed["transactions"]
    ]
    assert rows == [
        (failed, "outbound_payment", -100, 15, "FAILED"),
        (withdrawn, "outbound_payment", -200, 15, "SUCCESS"),
        (collected, "inbound_payment", 500, 7.5, "SUCCESS"),
    ]
    assert listed["transactions"][1]["description"] == "KES 200 to 254711222333"
    assert listed["pagination"]["count"] == 3
    # Paged across both kinds: two per page.
    second = (await world.http.get("/api/v2/transactions?page=2&per=2", headers=world.a.headers)).json()
    assert [t["transaction_reference"] for t in second["transactions"]] == [collected]
    assert (second["pagination"]["count"], second["pagination"]["prev_page"]) == (3, 1)
    # Merchant B sees none of them.
    b_listed = (await world.http.get("/api/v2/transactions", headers=world.b.headers)).json()
    assert b_listed["transactions"] == []
