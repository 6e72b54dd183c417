"""Every Daraja code malipo meets maps to a clear final state or a retry (reference §G, §H, §I,
§C): final STK codes fail with words a merchant understands; "being processed" is asked again,
never failed; spike arrest and quota are retried later with a delay; an expired token is
fetched again once and the call sent again once. Gateway errors come from the simulator behind
a fault injector, over real HTTP."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from malipo.config import Settings
from malipo.core.clock import SystemClock
from malipo.providers.base import PhonePayment, RailError, Status
from malipo.providers.daraja import codes
from malipo.providers.daraja.callbacks import parse_stk_callback
from malipo.providers.daraja.commands import parse_balance_string, parse_reversal_result
from malipo.providers.daraja.mobile_money import DarajaMobileMoney
from malipo.refunds.models import Refund
from malipo.worker.models import Job
from tests.fixtures.world import Fault, Faults, Sim, StartMalipo, eventually
from tests.refunds.test_refunds import active_refund_holds, ask_refund, collected


def _stk(code: int, desc: str) -> bytes:
    callback = {
        "MerchantRequestID": "1-2-1",
        "CheckoutRequestID": "ws_CO_1",
        "ResultCode": code,
        "ResultDesc": desc,
    }
    return json.dumps({"Body": {"stkCallback": callback}}).encode()


@pytest.mark.parametrize(
    ("code", "desc", "words"),
    [
        (17, "Rule limited.", "same amount to the same customer within 2 minutes"),
        (1001, "Unable to lock subscriber", "busy with another transaction"),
        (1019, "Transaction has expired", "did not complete the M-Pesa prompt in time"),
        (2028, "The request is not permitted according to product assignment", "product assignment"),
        (26, "System busy", "too busy"),
        (1032, "Request cancelled by user", "Request cancelled by user"),  # clear already: as Daraja says
        (1, "The balance is insufficient for the transaction.", "The balance is insufficient"),
    ],
)
def test_final_stk_codes_fail_with_a_clear_message(code: int, desc: str, words: str) -> None:
    outcome = parse_stk_callback(_stk(code, desc))
    assert outcome.status == Status.FAILED
    assert outcome.result_code == code
    assert words in outcome.result_desc
    assert desc in outcome.result_desc, "Daraja's own words are kept"


@pytest.mark.parametrize(
    ("code", "words"),
    [("R000001", "already been reversed"), ("R000002", "does not know the original transaction"),
     ("2001", "initiator"), ("21", "not allowed to reverse"), ("1", "insufficient")],
)  # fmt: skip
def test_reversal_failures_are_final_with_their_string_codes(code: str, words: str) -> None:
    body = {
        "Result": {"ResultType": 0, "ResultCode": code, "ResultDesc": "Daraja says no",
                   "OriginatorConversationID": "a-1", "ConversationID": "AG_1", "TransactionID": "SKE0000000"}
    }  # fmt: skip
    rail = DarajaMobileMoney(Settings(), "test")
    outcome = rail.parse_reversal_result(json.dumps(body).encode())
    assert (outcome.status, outcome.result_code) == (Status.FAILED, code)
    assert words in outcome.result_desc
    assert outcome.amount is None


def test_a_reversal_success_and_a_balance_string_are_read_by_key_and_position() -> None:
    body = {
        "Result": {"ResultType": 0, "ResultCode": 0, "ResultDesc": "ok", "OriginatorConversationID": "a-1",
                   "ConversationID": "AG_1", "TransactionID": "SKE52PAWR9",
                   "ResultParameters": {"ResultParameter": [
                       {"Key": "Amount", "Value": 1.00},
                       {"Key": "OriginalTransactionID", "Value": "SKC82PACB8"}]}}
    }  # fmt: skip
    outcome = parse_reversal_result(json.dumps(body).encode())
    assert (outcome.status, outcome.amount, outcome.original_receipt, outcome.receipt) == (
        Status.SUCCEEDED, 100, "SKC82PACB8", "SKE52PAWR9",
    )  # fmt: skip
    lines = parse_balance_string(
        "Working Account|KES|700000.00|700000.00|0.00|0.00"
        "&Charges Paid Account|KES|-1540.00|-1540.00|0.00|0.00"
    )
    assert [(line.name, line.amounts) for line in lines] == [
        ("Working Account", (70_000_000, 70_000_000, 0, 0)),
        ("Charges Paid Account", (-154_000, -154_000, 0, 0)),
    ]  # fmt: skip
    with pytest.raises(ValueError, match="account"):
        parse_balance_string("Working Account|KES")


def _rail(sim: Sim) -> tuple[DarajaMobileMoney, httpx.AsyncClient]:
    http = httpx.AsyncClient(timeout=10)
    settings = Settings(daraja_simulator_url=sim.url, public_url="http://127.0.0.1:9")
    return DarajaMobileMoney(settings, "test", http), http


def _payment() -> PhonePayment:
    return PhonePayment(
        reference="P1", amount=100_00, phone="254711222333", our_id=str(uuid.uuid4()), callback_token="t"
    )


def _gateway(code: str, message: str, status: int = 500) -> dict[str, Any]:
    return {"requestId": "r-1", "errorCode": code, "errorMessage": message}


async def test_being_processed_is_asked_again_never_failed(faulty_sim: tuple[Sim, Faults]) -> None:
    sim, faults = faulty_sim
    being_processed = _gateway(codes.BEING_PROCESSED, "The transaction is being processed")
    faults.faults["/mpesa/stkpushquery/v1/query"] = Fault(500, being_processed, after=False)
    rail, http = _rail(sim)
    async with http:
        outcome = await rail.query_push("ws_CO_unknown")
    assert outcome.status == Status.PENDING


@pytest.mark.parametrize(("code", "wait"), [(codes.SPIKE_ARREST, 30.0), (codes.QUOTA_VIOLATION, 300.0)])
async def test_spike_arrest_and_quota_are_retried_later_with_a_delay(
    faulty_sim: tuple[Sim, Faults], code: str, wait: float
) -> None:
    sim, faults = faulty_sim
    faults.faults["/mpesa/b2c/v3/paymentrequest"] = Fault(
        500, _gateway(code, "Spike arrest violation"), after=False
    )
    rail, http = _rail(sim)
    async with http:
        with pytest.raises(RailError) as raised:
            await rail.pay_phone(_payment())
    assert raised.value.retryable, "not a refusal: the same request may pass later"
    assert raised.value.not_taken, "Daraja said no before doing anything"
    assert raised.value.retry_after == wait


async def test_an_expired_token_is_fetched_again_once_and_the_call_sent_again_once(
    faulty_sim: tuple[Sim, Faults],
) -> None:
    sim, faults = faulty_sim
    expired = Fault(404, _gateway(codes.EXPIRED_TOKEN, "Invalid Access Token"), after=False, times=1)
    faults.faults["/mpesa/b2c/v3/paymentrequest"] = expired
    rail, http = _rail(sim)
    async with http:
        hits = sim.sim.oauth_hits
        accepted = await rail.pay_phone(_payment())
        assert accepted.provider_reference
        assert sim.sim.oauth_hits == hits + 2, "one token, then one new token after the rejection"
        faults.faults["/mpesa/b2c/v3/paymentrequest"] = Fault(404, expired.body, after=False, times=2)
        with pytest.raises(RailError):
            await rail.pay_phone(_payment())  # rejected again after the one retry: not a loop
        assert sim.sim.oauth_hits == hits + 3


async def test_the_worker_waits_as_long_as_a_rate_limit_asks(
    start_malipo: StartMalipo, faulty_sim: tuple[Sim, Faults]
) -> None:
    sim, faults = faulty_sim
    world = await start_malipo(sim=sim)
    reference = await collected(world, 100)
    faults.faults["/mpesa/reversal/v1/request"] = Fault(
        500, _gateway(codes.SPIKE_ARREST, "Spike arrest"), after=False
    )
    reply = await ask_refund(world, reference)
    assert reply.status_code == 201, reply.text

    async def retried() -> Job | None:
        async with world.db.transaction() as session:
            job = await session.scalar(select(Job).where(Job.kind == "refund.reverse"))
        return job if job is not None and job.attempts == 1 and job.status == "pending" else None

    job = await eventually(retried, "the reversal job to be put back")
    assert job.run_at - SystemClock().now() >= timedelta(seconds=25), "not before the spike arrest's wait"
    async with world.db.transaction() as session:
        refund = await session.scalar(select(Refund))
    assert refund is not None
    assert (refund.status, refund.sent_at) == ("pending", None), "never sent: free to send again"
    assert len(await active_refund_holds(world)) == 1, "still held while it waits"
