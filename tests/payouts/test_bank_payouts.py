"""Bank payouts (POST /api/v2/withdraw with channel bank) end to end: malipo pays the bank's M-Pesa
paybill by B2B with the account number as the reference; the Daraja simulator and the merchant's
callback endpoint answer over real HTTP. Funds are held first, settled to bank clearing on
success, released on failure."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import select

from malipo.ledger.models import AccountKind, LedgerAccount
from malipo.payouts import service as payouts
from malipo.payouts.models import Payout
from malipo.providers.daraja.simulator import B2BPayment
from malipo.worker.runner import Worker
from tests.fixtures.world import (
    CURRENCY,
    SERVICE_FUNDS,
    Mailbox,
    StartMalipo,
    World,
    active_holds,
    final_payout,
    fund_payments,
)

KCB, KCB_PAYBILL = "01", "522522"
EQUITY, EQUITY_PAYBILL = "68", "247247"
CITIBANK = "16"  # a known bank with no paybill in malipo's table
ACCOUNT = "1234567890"
# The simulator's scripted accounts (see malipo.providers.daraja.simulator).
INITIATOR_INVALID = "1000000021"  # 2001
NO_SUCH_ACCOUNT = "1000000023"  # 12
QUEUE_TIMEOUT = "1000000024"  # QueueTimeOutURL only
RESULT_LOST = "1000000025"  # paid; only transaction status tells
NEVER_HAPPENED = "1000000026"  # failed and its result lost: transaction status finds nothing

FEE = 15_00  # the default payout fee, KES 15.00


async def _to_bank(
    world: World, amount: int, account: str | None = ACCOUNT, network_code: str = KCB, **extra: Any
) -> httpx.Response:
    body = {"amount": amount, "channel": "bank", "network_code": network_code, "account_number": account}
    body = {key: value for key, value in (body | extra).items() if value is not None}
    return await world.http.post("/api/v2/withdraw", json=body, headers=world.a.headers)


async def _bank_clearing(world: World) -> int:
    async with world.db.transaction() as session:
        balance = await session.scalar(
            select(LedgerAccount.balance).where(
                LedgerAccount.owner_key == "system",
                LedgerAccount.kind == AccountKind.BANK_CLEARING,
                LedgerAccount.mode == "test",
                LedgerAccount.currency == CURRENCY,
            )
        )
    return int(balance or 0)


async def _payouts(world: World) -> int:
    async with world.db.transaction() as session:
        return len((await session.scalars(select(Payout))).all())


def _b2b_of(world: World, payout: Payout) -> B2BPayment:
    """The B2B payment the simulator received for ``payout`` (it shares one simulator between tests)."""
    found = world.sim.sim.b2b_payments.get(payout.originator_conversation_id)
    assert found is not None, f"no B2B payment for {payout.reference}"
    return found


async def test_a_bank_payout_pays_the_banks_paybill_and_settles_to_bank_clearing(
    world: World, mailbox: Mailbox
) -> None:
    await fund_payments(world, 1_000_00)
    before = await world.balances()
    bank_before = await _bank_clearing(world)
    reply = await _to_bank(world, 250, external_reference="BANK-1", callback_url=mailbox.url)
    assert reply.status_code == 201, reply.text
    body = reply.json()
    assert body["status"] == "QUEUED"
    assert body["response_code"] == "0"
    assert body["external_reference"] == "BANK-1"
    assert body["checkout_request_id"].endswith(body["conversation_id"])

    payout = await final_payout(world, body["merchant_reference"])
    assert payout.status == "SUCCESS", payout.result_desc
    assert (payout.channel, payout.network_code, payout.account_number, payout.phone) == (
        "bank", KCB, ACCOUNT, None,
    )  # fmt: skip
    sent = _b2b_of(world, payout)
    assert (sent.party_b, sent.account_reference, sent.amount) == (KCB_PAYBILL, ACCOUNT, 250)
    assert sent.command_id == "BusinessPayBill"
    assert payout.transaction_id == sent.transaction_id
    assert payout.conversation_id == sent.conversation_id
    assert payout.originator_conversation_id not in world.sim.sim.b2c_payments, "no B2C for a bank payout"

    [callback] = await mailbox.wait_for(1)
    assert callback["success"] is True
    assert callback["status"] == "success"
    assert callback["provider"] == "KCB"
    assert callback["reference"] == payout.reference
    assert callback["external_reference"] == "BANK-1"
    assert callback["amount"] == 250
    assert callback["provider_reference"] == payout.transaction_id

    after = await world.balances()
    assert after.payments == (before.payments[0] - 250_00, 0)
    assert after.service == (before.service[0] - FEE, 0)
    assert after.fee_revenue == before.fee_revenue + FEE
    assert await _bank_clearing(world) == bank_before + 250_00, "the money left through bank clearing"
    assert after.clearing == before.clearing, "nothing went through M-Pesa (B2C) clearing"
    assert await active_holds(world) == 0
    status = await world.status(payout.reference)
    assert status.status_code == 200
    assert status.json()["status"] == "SUCCESS"
    assert status.json()["provider_reference"] == payout.transaction_id
    assert status.json()["provider"] == "KCB"
    await world.verify_ledger()


async def test_the_operators_paybills_add_banks_and_override_the_table(start_malipo: StartMalipo) -> None:
    world = await start_malipo(bank_paybills={CITIBANK: "123456", KCB: "522523"})
    await fund_payments(world, 1_000_00)
    sent: dict[str, B2BPayment] = {}
    for code in (CITIBANK, KCB, EQUITY):
        reply = await _to_bank(world, 100, network_code=code)
        assert reply.status_code == 201, reply.text
        payout = await final_payout(world, reply.json()["merchant_reference"])
        assert payout.status == "SUCCESS", payout.result_desc
        sent[code] = _b2b_of(world, payout)
    assert {code: payment.party_b for code, payment in sent.items()} == {
        CITIBANK: "123456", KCB: "522523", EQUITY: EQUITY_PAYBILL,
    }  # fmt: skip
    assert await _bank_clearing(world) == 300_00
    await world.verify_ledger()


async def test_failed_bank_payouts_release_both_holds(world: World, mailbox: Mailbox) -> None:
    await fund_payments(world, 1_000_00)
    before = await world.balances()
    references = []
    for account in (INITIATOR_INVALID, NO_SUCH_ACCOUNT, QUEUE_TIMEOUT):
        reply = await _to_bank(world, 100, account, callback_url=mailbox.url)
        assert reply.status_code == 201, reply.text
        references.append(reply.json()["merchant_reference"])
    finished = [await final_payout(world, reference) for reference in references]
    assert [payout.status for payout in finished] == ["FAILED"] * 3
    assert [payout.result_code for payout in finished] == [2001, 12, 1]
    assert "timed out" in (finished[2].result_desc or "").lower()
    callbacks = await mailbox.wait_for(3)
    assert sorted(c["status"] for c in callbacks) == ["failed"] * 3
    assert {c["provider"] for c in callbacks} == {"KCB"}
    after = await world.balances()
    assert after.payments == before.payments
    assert after.service == before.service
    assert after.fee_revenue == before.fee_revenue
    assert await _bank_clearing(world) == 0
    assert await active_holds(world) == 0
    await world.verify_ledger()


async def test_a_lost_bank_result_is_settled_by_a_transaction_status_query(start_malipo: StartMalipo) -> None:
    world = await start_malipo(payout_query_after_seconds=0.1)
    await fund_payments(world, 500_00)
    reply = await _to_bank(world, 300, RESULT_LOST, network_code=EQUITY)
    assert reply.status_code == 201, reply.text
    payout = await final_payout(world, reply.json()["merchant_reference"])
    assert payout.status == "SUCCESS", payout.result_desc
    sent = _b2b_of(world, payout)
    assert payout.transaction_id == sent.transaction_id
    asked = {query.original_conversation_id for query in world.sim.sim.status_queries}
    assert sent.conversation_id in asked, "asked by Daraja's ConversationID from the ack"
    assert all(d.url != sent.result_url for d in world.sim.sim.deliveries), "the result itself never came"
    balances = await world.balances()
    assert balances.payments == (200_00, 0)
    assert balances.service == (SERVICE_FUNDS - FEE, 0)
    assert await _bank_clearing(world) == 300_00
    assert await active_holds(world) == 0
    await world.verify_ledger()


async def test_a_bank_payout_that_never_happened_fails_after_the_status_queries(
    start_malipo: StartMalipo, mailbox: Mailbox
) -> None:
    world = await start_malipo(payout_query_after_seconds=0.05)
    await fund_payments(world, 500_00)
    before = await world.balances()
    reply = await _to_bank(world, 300, NEVER_HAPPENED, callback_url=mailbox.url)
    assert reply.status_code == 201, reply.text
    payout = await final_payout(world, reply.json()["merchant_reference"], timeout=15.0)
    assert payout.status == "FAILED"
    assert payout.result_code == 2032
    sent = _b2b_of(world, payout)
    asked = [q for q in world.sim.sim.status_queries if q.original_conversation_id == sent.conversation_id]
    assert len(asked) == payouts.MAX_STATUS_QUERIES
    [callback] = await mailbox.wait_for(1)
    assert callback["status"] == "failed"
    assert await world.balances() == before
    assert await _bank_clearing(world) == 0
    assert await active_holds(world) == 0
    await world.verify_ledger()


async def test_a_bank_with_no_paybill_is_refused_and_holds_nothing(world: World) -> None:
    await fund_payments(world, 500_00)
    before = await world.balances()
    reply = await _to_bank(world, 100, network_code=CITIBANK)
    assert reply.status_code == 400, reply.text
    error = reply.json()
    assert error["error_code"] == "invalid_argument"
    assert error["status_code"] == 400
    assert error["error_message"].startswith("network_code")
    assert "Citibank" in error["error_message"]
    assert "MALIPO_BANK_PAYBILLS" in error["error_message"]
    assert await world.balances() == before
    assert await _payouts(world) == 0
    assert await active_holds(world) == 0
    assert await world.jobs(payouts.SEND_JOB) == []


async def test_a_bad_account_number_or_bank_code_is_refused_and_holds_nothing(world: World) -> None:
    await fund_payments(world, 500_00)
    before = await world.balances()
    for account, network_code, field, words in (
        ("12345678901234", KCB, "account_number", "at most 13"),
        ("12345678901234567890", KCB, "account_number", "at most 13"),
        ("12AB567890", KCB, "account_number", "digits"),
        ("1234", KCB, "account_number", "digits"),
        (None, KCB, "account_number", "digits"),
        (ACCOUNT, "99", "network_code", "bank code"),
        (ACCOUNT, "63902", "network_code", "bank code"),
    ):
        reply = await _to_bank(world, 100, account, network_code=network_code)
        assert reply.status_code == 400, (account, network_code, reply.text)
        message = reply.json()["error_message"]
        assert message.startswith(field), (account, network_code, message)
        assert words in message, (account, network_code, message)
    assert await world.balances() == before
    assert await _payouts(world) == 0
    assert await world.jobs(payouts.SEND_JOB) == []


async def test_a_bank_payout_for_more_than_is_available_is_refused_and_holds_nothing(world: World) -> None:
    await fund_payments(world, 150_00)
    before = await world.balances()
    reply = await _to_bank(world, 200)
    assert reply.status_code == 400, reply.text
    error = reply.json()
    assert error["error_code"] == "invalid_argument"
    assert "KES 150.00 available" in error["error_message"]
    assert await world.balances() == before
    assert await _payouts(world) == 0
    assert await active_holds(world) == 0


async def test_a_repeated_external_reference_pays_the_bank_once(world: World) -> None:
    await fund_payments(world, 500_00)
    first = await _to_bank(world, 100, external_reference="BANK-ONCE")
    again = await _to_bank(world, 100, external_reference="BANK-ONCE")
    assert first.status_code == again.status_code == 201
    assert first.json()["merchant_reference"] == again.json()["merchant_reference"]
    payout = await final_payout(world, first.json()["merchant_reference"])
    assert payout.status == "SUCCESS"
    assert await _payouts(world) == 1
    assert len([p for p in world.sim.sim.b2b_payments.values() if p.occasion == payout.reference]) == 1
    assert (await world.balances()).payments == (400_00, 0)
    await world.verify_ledger()


async def test_a_queued_bank_payout_keeps_the_paybill_it_was_asked_with(start_malipo: StartMalipo) -> None:
    """The operator's paybill at request time is paid, even if MALIPO_BANK_PAYBILLS changes before sending."""
    world = await start_malipo(inprocess_worker=False, bank_paybills={KCB: "522523"})
    await fund_payments(world, 500_00)
    reply = await _to_bank(world, 100)
    assert reply.status_code == 201, reply.text
    worker = Worker(world.db, world.settings.model_copy(update={"bank_paybills": {}}))
    try:
        assert await worker.run_once() == 1
    finally:
        await worker.aclose()
    payout = await final_payout(world, reply.json()["merchant_reference"])
    assert payout.status == "SUCCESS", payout.result_desc
    assert _b2b_of(world, payout).party_b == "522523", "not the table's 522522"
    await world.verify_ledger()
