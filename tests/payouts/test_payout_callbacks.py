"""Payout results checked against what malipo asked (issue 12, items 2, 3 and 7): results with
another payout's ids are refused, another amount or receiver is held for review with the holds
kept, replays and late results move no money, malformed results are refused and the status
query still settles the payout. B2C (phones) and B2B (banks' paybills)."""

from __future__ import annotations

import asyncio
import copy
import json
from typing import Any

import httpx
import structlog

from malipo.payouts.models import Payout
from malipo.payouts.service import RECONCILE_JOB
from malipo.providers.daraja.simulator import B2BPayment, B2CPayment, status_parameters
from tests.fixtures.world import (
    Mailbox,
    World,
    active_holds,
    eventually,
    final_payout,
    fund_payments,
    payout_by_reference,
)
from tests.payouts.test_bank_payouts import KCB_PAYBILL, _bank_clearing, _to_bank
from tests.payouts.test_bank_payouts import RESULT_LOST as BANK_RESULT_LOST
from tests.payouts.test_payouts import FEE, PAID, QUEUE_TIMEOUT, RESULT_LOST, _withdraw
from tests.reviews.helpers import portal_user, resolve, review_list, reviews, run_jobs_now


async def _sent(world: World, reply: httpx.Response) -> Payout:
    """The payout of ``reply`` once malipo has stored Daraja's acknowledgement."""
    assert reply.status_code == 201, reply.text
    reference = reply.json()["merchant_reference"]

    async def acknowledged() -> Payout | None:
        payout = await payout_by_reference(world, reference)
        return payout if payout.conversation_id else None

    return await eventually(acknowledged, f"payout {reference} sent")  # type: ignore[no-any-return]


async def _settled_at_daraja(payments: dict[str, Any], payout: Payout) -> Any:
    """The simulator's payment for ``payout`` once it has decided its outcome."""

    async def decided() -> Any:
        found = payments.get(payout.originator_conversation_id)
        return found if found is not None and found.result is not None else None

    return await eventually(decided, f"Daraja's outcome of {payout.reference}")


async def _b2c(world: World, payout: Payout) -> B2CPayment:
    return await _settled_at_daraja(world.sim.sim.b2c_payments, payout)  # type: ignore[no-any-return]


async def _b2b(world: World, payout: Payout) -> B2BPayment:
    return await _settled_at_daraja(world.sim.sim.b2b_payments, payout)  # type: ignore[no-any-return]


def _result_of(world: World, payment: B2CPayment | B2BPayment) -> dict[str, Any]:
    """The Result Daraja would post for ``payment`` (its own was lost on the way)."""
    sim = world.sim.sim
    body = sim._b2c_result(payment) if isinstance(payment, B2CPayment) else sim._b2b_result(payment)
    return copy.deepcopy(body)


def _set_parameter(body: dict[str, Any], key: str, value: Any) -> dict[str, Any]:
    for item in body["Result"]["ResultParameters"]["ResultParameter"]:
        if item["Key"] == key:
            item["Value"] = value
    return body


def _status_body(payment: B2CPayment | B2BPayment, occasion: str = "query-1") -> dict[str, Any]:
    """A transaction-status answer that finds ``payment`` completed."""
    parameters = status_parameters(payment)
    return {
        "Result": {
            "ResultType": 0, "ResultCode": 0, "ResultDesc": "The service request is processed successfully.",
            "OriginatorConversationID": "status-query-1", "ConversationID": "AG_20260101_status",
            "TransactionID": parameters["ReceiptNo"],
            "ResultParameters": {"ResultParameter": [{"Key": k, "Value": v} for k, v in parameters.items()]},
            "ReferenceData": {"ReferenceItem": {"Key": "Occasion", "Value": occasion}},
        }
    }  # fmt: skip


def _timeout_body(payout: Payout) -> dict[str, Any]:
    return {
        "Result": {
            "ResultType": 1, "ResultCode": 1, "ResultDesc": "The service request has timed out.",
            "OriginatorConversationID": payout.originator_conversation_id,
            "ConversationID": payout.conversation_id,
        }
    }  # fmt: skip


def _urls(payment: B2CPayment | B2BPayment) -> tuple[str, str, str]:
    """The payout's ResultURL, QueueTimeOutURL and status URL."""
    return (
        payment.result_url,
        payment.queue_timeout_url,
        payment.result_url.removesuffix("/result") + "/status",
    )


async def _still_sent(world: World, payout: Payout, before: Any, journals: int) -> None:
    now = await payout_by_reference(world, payout.reference)
    assert (now.status, now.journal_id, now.transaction_id) == ("SENT", None, None)
    assert await world.balances() == before
    assert len(await world.journals()) == journals
    assert await world.deliveries(payout.reference) == []
    await world.verify_ledger()


# -- forged ids ---------------------------------------------------------------------------------


async def test_results_naming_another_payout_are_refused_and_change_nothing(
    world: World, mailbox: Mailbox
) -> None:
    await fund_payments(world, 1_000_00)
    payout = await _sent(world, await _withdraw(world, 200, RESULT_LOST, callback_url=mailbox.url))
    other = await _sent(world, await _withdraw(world, 200, RESULT_LOST))
    payment, elsewhere = await _b2c(world, payout), await _b2c(world, other)
    result_url, timeout_url, status_url = _urls(payment)
    before, journals, holds = await world.balances(), len(await world.journals()), await active_holds(world)

    genuine = _result_of(world, payment)
    wrong_conversation = _result_of(world, payment)
    wrong_conversation["Result"]["ConversationID"] = elsewhere.conversation_id
    wrong_originator = _result_of(world, payment)
    wrong_originator["Result"]["OriginatorConversationID"] = elsewhere.originator_conversation_id
    timeout = _timeout_body(payout)
    timeout["Result"]["ConversationID"] = "AG_20260101_forged"
    with structlog.testing.capture_logs() as events:
        for url, body in (
            (result_url, _result_of(world, elsewhere)),  # another payout's whole result
            (result_url, wrong_conversation),
            (result_url, wrong_originator),
            (timeout_url, timeout),
            (status_url, _status_body(elsewhere)),  # the status query found another payout
        ):
            reply = await world.http.post(url, json=body)
            assert reply.status_code == 409, reply.text
            assert reply.json()["code"] == "callback_mismatch"
    refused = [e for e in events if e["event"] == "callback.mismatch"]
    assert [e["reference"] for e in refused] == [payout.reference] * 5
    for url in (result_url, timeout_url, status_url):  # a token never issued
        forged = url.replace(url.split("/")[-2], "x" * 43)
        assert (await world.http.post(forged, json=genuine)).status_code == 404
    await _still_sent(world, payout, before, journals)
    assert await active_holds(world) == holds

    assert (await world.http.post(result_url, json=genuine)).status_code == 200
    assert (await final_payout(world, payout.reference)).status == "SUCCESS"
    assert (await world.balances()).clearing == before.clearing + 200_00
    await world.verify_ledger()


# -- another amount or receiver: review ----------------------------------------------------------


async def test_a_b2c_result_paying_more_than_asked_is_held_and_can_only_be_rejected(
    world: World, mailbox: Mailbox
) -> None:
    await fund_payments(world, 1_000_00)
    payout = await _sent(world, await _withdraw(world, 10, RESULT_LOST, callback_url=mailbox.url))
    payment = await _b2c(world, payout)
    before, journals, holds = await world.balances(), len(await world.journals()), await active_holds(world)
    body = _set_parameter(_result_of(world, payment), "TransactionAmount", 99999)
    assert (await world.http.post(payment.result_url, json=body)).status_code == 200

    held = await payout_by_reference(world, payout.reference)
    assert (held.status, held.journal_id, held.amount) == ("REVIEW", None, 10_00)
    assert await world.balances() == before, "nothing settled, both holds kept"
    assert await active_holds(world) == holds
    assert len(await world.journals()) == journals
    assert await world.deliveries(payout.reference) == []
    assert (await world.status(payout.reference)).json()["status"] == "QUEUED"
    # The status query and a late timeout change nothing while it is held.
    assert (await world.http.post(_urls(payment)[2], json=_status_body(payment))).status_code == 200
    assert (await world.http.post(payment.queue_timeout_url, json=_timeout_body(held))).status_code == 200
    assert (await payout_by_reference(world, payout.reference)).status == "REVIEW"

    operator = await portal_user(world, "CompanyAdmin")
    [item] = [i for i in (await review_list(world, operator)).json()["items"] if i["id"] == str(payout.id)]
    assert (item["kind"], item["askedAmount"], item["receivedAmount"]) == ("payout", "10.00", "99999.00")
    refused = await resolve(world, operator, "payout", payout.id, "accept")
    assert refused.status_code == 409, refused.text
    assert refused.json()["code"] == "received_above_hold"
    assert (await payout_by_reference(world, payout.reference)).status == "REVIEW"
    assert await world.balances() == before

    rejected = await resolve(world, operator, "payout", payout.id, "reject")
    assert rejected.status_code == 200, rejected.text
    failed = await payout_by_reference(world, payout.reference)
    assert (failed.status, failed.journal_id) == ("FAILED", None)
    after = await world.balances()
    assert after.payments == (before.payments[0], before.payments[1] - 10_00), "the hold released"
    assert after.service == (before.service[0], before.service[1] - FEE)
    assert after.clearing == before.clearing
    [callback] = await mailbox.wait_for(1)
    assert callback["status"] == "failed"
    assert (await resolve(world, operator, "payout", payout.id, "reject")).status_code == 409
    assert await world.balances() == after
    await world.verify_ledger()


async def test_a_b2c_result_to_another_receiver_for_less_is_held_then_settled_at_what_left(
    world: World, mailbox: Mailbox
) -> None:
    await fund_payments(world, 1_000_00)
    payout = await _sent(world, await _withdraw(world, 200, RESULT_LOST, callback_url=mailbox.url))
    payment = await _b2c(world, payout)
    before = await world.balances()
    body = _result_of(world, payment)
    _set_parameter(body, "TransactionAmount", 150)
    _set_parameter(body, "ReceiverPartyPublicName", "254799999999 - Someone Else")
    assert (await world.http.post(payment.result_url, json=body)).status_code == 200
    [review] = await reviews(world)
    assert (review.asked_amount, review.received_amount) == (200_00, 150_00)
    assert (review.asked_party, review.received_party) == (RESULT_LOST, "254799999999")
    assert review.reason == "the amount differs; the party differs"

    operator = await portal_user(world, "CompanyAdmin")
    accepted = await resolve(world, operator, "payout", payout.id, "accept")
    assert accepted.status_code == 200, accepted.text
    settled = await payout_by_reference(world, payout.reference)
    assert (settled.status, settled.amount) == ("SUCCESS", 150_00)
    after = await world.balances()
    assert after.payments == (before.payments[0] - 150_00, 0), "150 left; the other 50 released"
    assert after.clearing == before.clearing + 150_00
    assert after.service == (before.service[0] - FEE, 0)
    assert after.fee_revenue == before.fee_revenue + FEE
    assert await active_holds(world) == 0
    [callback] = await mailbox.wait_for(1)
    assert (callback["status"], callback["amount"]) == ("success", 150)
    assert (await resolve(world, operator, "payout", payout.id, "accept")).status_code == 409
    assert await world.balances() == after
    await world.verify_ledger()


async def test_a_b2b_result_for_another_amount_or_account_is_held_and_forged_ids_refused(
    world: World, mailbox: Mailbox
) -> None:
    await fund_payments(world, 1_000_00)
    payout = await _sent(world, await _to_bank(world, 300, BANK_RESULT_LOST, callback_url=mailbox.url))
    other = await _sent(world, await _to_bank(world, 300, BANK_RESULT_LOST))
    payment = await _b2b(world, payout)
    bank_before, before = await _bank_clearing(world), await world.balances()

    forged = _result_of(world, payment)
    forged["Result"]["ConversationID"] = (await _b2b(world, other)).conversation_id
    assert (await world.http.post(payment.result_url, json=forged)).status_code == 409
    assert (
        await world.http.post(payment.result_url, json=_result_of(world, await _b2b(world, other)))
    ).status_code == 409
    assert (await payout_by_reference(world, payout.reference)).status == "SENT"

    body = _set_parameter(_result_of(world, payment), "Amount", 250)
    for item in body["Result"]["ReferenceData"]["ReferenceItem"]:
        if item["Key"] == "BillReferenceNumber":
            item["Value"] = "9999999999"
    assert (await world.http.post(payment.result_url, json=body)).status_code == 200
    [review] = await reviews(world)
    assert review.reason == "the amount differs; the account differs"
    assert review.received_party == f"paybill {KCB_PAYBILL} / account 9999999999"
    assert (await payout_by_reference(world, payout.reference)).status == "REVIEW"
    assert await world.balances() == before
    assert await _bank_clearing(world) == bank_before

    operator = await portal_user(world, "CompanyAdmin")
    accepted = await resolve(world, operator, "payout", payout.id, "accept")
    assert accepted.status_code == 200, accepted.text
    assert await _bank_clearing(world) == bank_before + 250_00
    after = await world.balances()
    assert after.payments == (before.payments[0] - 250_00, before.payments[1] - 300_00)
    [callback] = await mailbox.wait_for(1)
    assert (callback["status"], callback["amount"]) == ("success", 250)
    await world.verify_ledger()


# -- replays and late results --------------------------------------------------------------------


async def test_replayed_and_late_payout_results_move_no_money(world: World, mailbox: Mailbox) -> None:
    await fund_payments(world, 1_000_00)
    paid = await final_payout(
        world, (await _withdraw(world, 100, PAID, callback_url=mailbox.url)).json()["merchant_reference"]
    )
    timed_out = await final_payout(
        world,
        (await _withdraw(world, 100, QUEUE_TIMEOUT, callback_url=mailbox.url)).json()["merchant_reference"],
    )
    assert (paid.status, timed_out.status) == ("SUCCESS", "FAILED")
    await mailbox.wait_for(2)
    await world.delivered(paid.reference)
    await world.delivered(timed_out.reference)
    before, journals, holds = await world.balances(), len(await world.journals()), await active_holds(world)

    payment = world.sim.sim.b2c_payments[paid.originator_conversation_id]
    [delivered] = [d.body for d in world.sim.sim.deliveries if d.url == payment.result_url]
    result_url, timeout_url, status_url = _urls(payment)
    failure = copy.deepcopy(delivered)
    failure["Result"] |= {"ResultCode": 1, "ResultDesc": "The balance is insufficient for the transaction."}
    failure["Result"].pop("ResultParameters")
    for url, body in (
        (result_url, delivered),  # the same result again
        (result_url, failure),  # a failure after the success
        (timeout_url, _timeout_body(paid)),  # a queue timeout after the success
        (status_url, _status_body(payment)),  # the status query's late answer
        (status_url, _status_body(payment, occasion="query-5")),
    ):
        reply = await world.http.post(url, json=body)
        assert reply.status_code == 200, reply.text
    replies = await asyncio.gather(*(world.http.post(result_url, json=delivered) for _ in range(5)))
    assert [r.status_code for r in replies] == [200] * 5

    # A success arriving after the payout timed out in M-Pesa's queue.
    late = world.sim.sim.b2c_payments[timed_out.originator_conversation_id]
    success = copy.deepcopy(delivered)
    success["Result"] |= {
        "OriginatorConversationID": timed_out.originator_conversation_id,
        "ConversationID": late.conversation_id,
    }
    _set_parameter(success, "TransactionAmount", 100)
    assert (await world.http.post(late.result_url, json=success)).status_code == 200
    assert (await world.http.post(_urls(late)[2], json=_status_body(payment))).status_code == 409

    assert (await payout_by_reference(world, paid.reference)).status == "SUCCESS"
    still = await payout_by_reference(world, timed_out.reference)
    assert (still.status, still.journal_id) == ("FAILED", None)
    assert await world.balances() == before
    assert len(await world.journals()) == journals
    assert await active_holds(world) == holds == 0
    for reference in (paid.reference, timed_out.reference):
        assert len(await world.deliveries(reference)) == 1, "the merchant is told once"
    assert await reviews(world) == []
    await world.verify_ledger()


# -- malformed results -----------------------------------------------------------------------------


async def test_malformed_payout_results_are_refused_and_the_status_query_settles_the_payout(
    world: World,
) -> None:
    await fund_payments(world, 1_000_00)
    payout = await _sent(world, await _withdraw(world, 100, RESULT_LOST))
    payment = await _b2c(world, payout)
    result_url, timeout_url, status_url = _urls(payment)
    before, journals = await world.balances(), len(await world.journals())

    def coded(body: dict[str, Any], code: Any) -> dict[str, Any]:
        changed = copy.deepcopy(body)
        changed["Result"]["ResultCode"] = code
        return changed

    genuine = _result_of(world, payment)
    bodies = {result_url: genuine, timeout_url: _timeout_body(payout), status_url: _status_body(payment)}
    for url, body in bodies.items():
        for code in (2**63, -(2**70), 2**64, 2**31, "0", 1.5, True, None):
            reply = await world.http.post(url, json=coded(body, code))
            assert reply.status_code == 422, (url, code, reply.text)
        reply = await world.http.post(url, content=json.dumps(body), headers={"Content-Type": "text/plain"})
        assert reply.status_code == 415, reply.text
    oversized = [
        _set_parameter(_result_of(world, payment), "TransactionReceipt", "R" * 20_000),
        _set_parameter(_result_of(world, payment), "TransactionAmount", 2**70),
        _set_parameter(_result_of(world, payment), "TransactionAmount", 1e308 * 10),
    ]
    long_id = _result_of(world, payment)
    long_id["Result"]["TransactionID"] = "T" * 31
    for body in (*oversized, long_id):
        reply = await world.http.post(
            result_url, content=json.dumps(body), headers={"Content-Type": "application/json"}
        )
        assert reply.status_code == 422, reply.text
    await _still_sent(world, payout, before, journals)

    assert await run_jobs_now(world, RECONCILE_JOB) == 1
    settled = await final_payout(world, payout.reference)
    assert settled.status == "SUCCESS"
    assert settled.transaction_id == payment.transaction_id
    assert (await world.balances()).payments == (before.payments[0] - 100_00, 0)
    await world.verify_ledger()
