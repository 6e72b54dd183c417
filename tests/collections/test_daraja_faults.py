"""Daraja misbehaving: a push whose reply is lost or garbled, a refused push, an STK query
that fails. No payer is pushed twice, no collection stays open, the merchant is told once."""

from __future__ import annotations

from malipo.providers.daraja.client import OAUTH_PATH, STK_PUSH_PATH, STK_QUERY_PATH
from tests.fixtures.world import (
    NO_CALLBACK,
    PAYS,
    SERVICE_FUNDS,
    Fault,
    Faults,
    Mailbox,
    Sim,
    StartMalipo,
)

INVALID_CHECKOUT = {
    "requestId": "5f1e-4b2c-9a6d-1c3e8f2a7b90",
    "errorCode": "400.002.02",
    "errorMessage": "Bad Request - Invalid CheckoutRequestID",
}
INVALID_PHONE = {
    "requestId": "7d2a-4c1b-8e3f-2a9b6c4d1e07",
    "errorCode": "400.002.02",
    "errorMessage": "Bad Request - Invalid PhoneNumber",
}


async def test_a_push_is_never_sent_twice_nor_failed_while_the_payer_may_pay(
    start_malipo: StartMalipo, faulty_sim: tuple[Sim, Faults], mailbox: Mailbox
) -> None:
    """Daraja took the push but its gateway answered 503 (or 200 with a body we cannot read):
    the payer may be paying, so pushing again or failing it would be wrong; the callback
    decides. A push Daraja refuses (its own 400) fails at once and releases the fee."""
    sim, faults = faulty_sim
    sim.sim.callback_delay = 0.3  # the callback comes after the garbled reply
    world = await start_malipo(sim=sim)
    faults.faults[STK_PUSH_PATH] = Fault(503, "upstream request timeout")
    gateway = await world.queued(250, PAYS, mailbox, external_reference="GATEWAY")
    assert (await world.final_status(gateway))["status"] == "SUCCESS"
    faults.faults[STK_PUSH_PATH] = Fault(200, {"unexpected": "shape"})
    garbled = await world.queued(250, PAYS, mailbox, external_reference="GARBLED")
    assert (await world.final_status(garbled))["status"] == "SUCCESS"
    faults.faults[STK_PUSH_PATH] = Fault(400, INVALID_PHONE, after=False)
    refused = await world.queued(250, PAYS, mailbox, external_reference="REFUSED")
    status = await world.final_status(refused)
    assert status["status"] == "FAILED"
    assert "Invalid PhoneNumber" in status["result_desc"]
    # No token (OAuth down once): no push was sent, so it is simply sent again.
    del faults.faults[STK_PUSH_PATH]
    world.sim.sim.expire_tokens()
    faults.faults[OAUTH_PATH] = Fault(503, "service unavailable", after=False, times=1)
    retried = await world.queued(250, PAYS, mailbox, external_reference="RETRIED")
    assert (await world.final_status(retried))["status"] == "SUCCESS"

    await mailbox.wait_for(4)
    outcomes = {c["response"]["ExternalReference"]: c["status"] for c in mailbox.bodies}
    assert outcomes == {"GATEWAY": True, "GARBLED": True, "REFUSED": False, "RETRIED": True}
    codes = {c["response"]["ExternalReference"]: c["response"]["ResultCode"] for c in mailbox.bodies}
    assert codes["REFUSED"] == 1025, "Daraja's 'error sending push request', not 1 (insufficient balance)"
    for reference, pushes in ((gateway, 1), (garbled, 1), (refused, 0), (retried, 1)):
        assert sim.pushes_for(reference) == pushes, "the payer was pushed twice"
        assert len(await world.deliveries(reference)) == 1
    [hold] = await world.holds(refused)
    assert hold.status == "released"
    balances = await world.balances()
    assert balances.payments == (750_00, 0)
    assert balances.service == (SERVICE_FUNDS - 3 * 3_75, 0)
    await world.verify_ledger()


async def test_an_stk_query_that_keeps_failing_still_ends_the_collection(
    start_malipo: StartMalipo, faulty_sim: tuple[Sim, Faults], mailbox: Mailbox
) -> None:
    """Daraja forgot the push (its query answers 400): the reconcile job gives up after its
    last query instead of leaving the collection open."""
    sim, faults = faulty_sim
    faults.faults[STK_QUERY_PATH] = Fault(400, INVALID_CHECKOUT, after=False)
    world = await start_malipo(sim=sim, stk_query_after_seconds=0.1)
    reference = await world.queued(250, NO_CALLBACK, mailbox)
    status = await world.final_status(reference)
    assert (status["status"], status["result_code"]) == ("FAILED", 1037)
    [callback] = await mailbox.wait_for(1)
    assert callback["response"]["ResultCode"] == 1037
    assert sim.sim.requests[STK_QUERY_PATH] == 0, "every query was answered by the fault"
    assert len(await world.deliveries(reference)) == 1
    assert (await world.balances()).service == (SERVICE_FUNDS, 0)
    await world.verify_ledger()
