"""Airtel Money collections (network_code 63903) end to end: Pay Hero's API in, the Airtel
simulator mounted in malipo (OAuth, USSD push, enquiry, its callback over HTTP), the books and
the merchant's callback out. Each outcome of the simulator's test numbers; the token refetched
after a 401; forged and mismatched callbacks that move nothing."""

from __future__ import annotations

import json
import re
from typing import Any

from malipo.collections.tasks import MAX_QUERIES
from malipo.ledger.models import Journal
from malipo.providers.airtel.signing import callback_hash
from malipo.providers.registry import airtel_callback_path, airtel_simulator_callback_key
from tests.fixtures.world import (
    PAYS,
    SERVICE_FUNDS,
    Fault,
    Faults,
    Mailbox,
    StartMalipo,
    World,
    active_holds,
    eventually,
)

AIRTEL = "63903"
AIRTEL_PAYS = "254733123456"
DECLINED = "254733000001"  # not enough balance
TIMES_OUT = "254733000003"  # never answered
CALLBACK_LOST = "254733000004"  # paid, callback lost

RECEIPT = re.compile(r"MP\d{6}\.\d{4}\.[A-Z]\d{5}")
FEE = 15_00  # 1.5 % of KES 1,000


async def _pay(
    world: World, phone: str, mailbox: Mailbox | None = None, amount: int = 1000, **extra: Any
) -> str:
    reference = await world.queued(amount, phone, mailbox, network_code=AIRTEL, **extra)
    return reference


async def _journals_of(world: World, reference: str) -> list[Journal]:
    return [
        j for j in await world.journals(kind="collection") if (j.details or {}).get("reference") == reference
    ]


async def test_an_airtel_collection_is_paid_credited_and_told_to_the_merchant(
    world: World, mailbox: Mailbox
) -> None:
    before = await world.balances()
    reference = await _pay(world, "0733 123 456", mailbox, external_reference="AIR-1", customer_name="Atieno")

    [callback] = await mailbox.wait_for(1)
    assert callback["status"] is True
    response = callback["response"]
    assert (response["Status"], response["ResultCode"], response["Amount"]) == ("Success", 0, 1000)
    assert RECEIPT.fullmatch(response["MpesaReceiptNumber"]), response
    assert response["Phone"] == "+254733123456"
    assert response["ExternalReference"] == "AIR-1"

    push = world.airtel.pushes[reference]  # Airtel knows it by our reference
    assert (push.msisdn, push.amount, push.currency) == ("733123456", 1000, "KES")
    collection = await world.collection(reference)
    assert (collection.status, collection.network_code) == ("SUCCESS", AIRTEL)
    assert collection.provider_checkout_request_id == reference
    assert collection.mpesa_receipt == response["MpesaReceiptNumber"]
    status = (await world.status(reference)).json()
    assert (status["status"], status["provider_reference"]) == ("SUCCESS", collection.mpesa_receipt)

    after = await world.balances()
    assert after.payments[0] - before.payments[0] == 1000_00
    assert after.service == (SERVICE_FUNDS - FEE, 0)
    assert after.fee_revenue - before.fee_revenue == FEE
    assert after.clearing - before.clearing == -1000_00
    [journal] = await _journals_of(world, reference)
    assert journal.description.startswith("Airtel Money MP"), journal.description
    assert [d.status for d in await world.delivered(reference)] == ["delivered"]
    await world.verify_ledger()


async def test_a_declined_airtel_collection_fails_and_credits_nothing(world: World, mailbox: Mailbox) -> None:
    before = await world.balances()
    reference = await _pay(world, DECLINED, mailbox)
    [callback] = await mailbox.wait_for(1)
    response = callback["response"]
    assert (callback["status"], response["Status"], response["ResultCode"]) == (False, "Failed", 1)
    assert "Not enough balance" in response["ResultDesc"]
    collection = await world.collection(reference)
    assert (collection.status, collection.mpesa_receipt, collection.journal_id) == ("FAILED", None, None)
    assert await world.balances() == before, "the fee's hold released, nothing credited"
    assert await active_holds(world) == 0
    await world.verify_ledger()


async def test_a_prompt_nobody_answers_is_failed_by_the_enquiries(start_malipo: StartMalipo) -> None:
    world = await start_malipo(stk_query_after_seconds=0.2)
    before = await world.balances()
    reference = await _pay(world, TIMES_OUT)
    final = await world.final_status(reference, timeout=15)
    assert final["status"] == "FAILED"
    collection = await world.collection(reference)
    assert collection.result_code == 1037, "no answer from the payer"
    assert "Airtel Money" in (collection.result_desc or "")
    # Pending at each enquiry (the first may come before the push's reply is stored: nothing to ask).
    assert world.airtel.requests["collection_status"] >= MAX_QUERIES - 1
    assert world.airtel.pushes[reference].status == "TIP"
    assert await world.balances() == before
    assert await active_holds(world) == 0
    await world.verify_ledger()


async def test_a_lost_callback_is_found_by_the_enquiry_and_credited_once(
    start_malipo: StartMalipo, mailbox: Mailbox
) -> None:
    world = await start_malipo(stk_query_after_seconds=0.1)
    before = await world.balances()
    reference = await _pay(world, CALLBACK_LOST, mailbox)
    final = await world.final_status(reference, timeout=15)
    assert final["status"] == "SUCCESS"
    assert world.airtel.deliveries == [], "the simulator never called back"
    collection = await world.collection(reference)
    assert collection.mpesa_receipt == world.airtel.pushes[reference].receipt
    [callback] = await mailbox.wait_for(1)
    assert callback["response"]["MpesaReceiptNumber"] == collection.mpesa_receipt
    assert len(await _journals_of(world, reference)) == 1
    after = await world.balances()
    assert after.payments[0] - before.payments[0] == 1000_00
    assert after.service[0] == before.service[0] - FEE
    await world.verify_ledger()


async def test_the_token_is_fetched_again_once_after_a_401(world: World, mailbox: Mailbox) -> None:
    first = await _pay(world, AIRTEL_PAYS, mailbox)
    await mailbox.wait_for(1)
    assert world.airtel.token_hits == 1
    world.airtel.expire_tokens()  # Airtel forgets it: the next push is answered 401 invalid_token
    second = await _pay(world, AIRTEL_PAYS, mailbox)
    await mailbox.wait_for(2)
    assert world.airtel.token_hits == 2, "one new token"
    assert world.airtel.requests["collect"] == 3, "the refused push, then the same push once more"
    assert {first, second} <= set(world.airtel.pushes)
    assert [(await world.collection(ref)).status for ref in (first, second)] == ["SUCCESS", "SUCCESS"]


def _transaction(transaction_id: str, status: str = "TS", **extra: Any) -> dict[str, Any]:
    return {"id": transaction_id, "message": "forged", "status_code": status,
            "airtel_money_id": "MP000000.0000.X00000", **extra}  # fmt: skip


def _callback(world: World, transaction_id: str, status: str = "TS", **extra: Any) -> dict[str, Any]:
    """A callback as the simulator's address takes it: signed with the simulator's callback key."""
    transaction = _transaction(transaction_id, status, **extra)
    key = airtel_simulator_callback_key(world.settings)
    return {"transaction": transaction, "hash": callback_hash(transaction, key)}


async def test_forged_and_mismatched_callbacks_move_nothing(world: World) -> None:
    reference = await _pay(world, TIMES_OUT)  # stays SENT: its payer never answers
    await eventually(lambda: _sent(world, reference), "the push to be sent")
    mpesa = await world.queued(100, PAYS)
    await world.final_status(mpesa)
    before = await world.balances()
    path = airtel_callback_path(world.settings, simulator=True)
    key = airtel_simulator_callback_key(world.settings)

    wrong_address = await world.http.post("/callbacks/airtel/not-the-token", json=_callback(world, reference))
    assert wrong_address.status_code == 404
    airtels_own = airtel_callback_path(world.settings)  # Airtel itself is not configured: unknown
    assert (await world.http.post(airtels_own, json=_callback(world, reference))).status_code == 404
    unknown_id = await world.http.post(path, json=_callback(world, "NOSUCHREF00"))
    assert unknown_id.status_code == 404
    other_network = await world.http.post(path, json=_callback(world, mpesa))
    assert other_network.status_code == 404, "an M-Pesa collection is not Airtel's to settle"
    unsigned = await world.http.post(path, json={"transaction": _transaction(reference)})
    assert unsigned.status_code == 401, "callback authentication is on for the simulator's address"
    assert unsigned.json()["code"] == "callback_not_signed"
    wrong_key = {"transaction": _transaction(reference), "hash": callback_hash(_transaction(reference), b"k")}
    assert (await world.http.post(path, json=wrong_key)).status_code == 401
    altered = _callback(world, reference)
    altered["transaction"]["airtel_money_id"] = "MP999999.9999.X99999"
    assert (await world.http.post(path, json=altered)).status_code == 401, "signed, then changed"
    signed_text = json.dumps(_callback(world, reference)).encode()
    not_json = await world.http.post(path, content=signed_text, headers={"content-type": "text/plain"})
    assert not_json.status_code == 415
    half = {"id": reference}
    malformed = await world.http.post(path, json={"transaction": half, "hash": callback_hash(half, key)})
    assert malformed.status_code == 422
    assert "status_code" in malformed.text
    assert (await world.collection(reference)).status == "SENT"

    wrong_amount = await world.http.post(path, json=_callback(world, reference, amount=1))
    assert wrong_amount.status_code == 200, wrong_amount.text
    collection = await world.collection(reference)
    assert collection.status == "REVIEW", "paid, but not what was asked: held for an operator"
    assert collection.journal_id is None
    again = await world.http.post(path, json=_callback(world, reference, amount=1000))
    assert again.status_code == 200
    assert (await world.collection(reference)).status == "REVIEW", "a later callback changes nothing"
    after = await world.balances()
    assert (after.payments, after.service) == (before.payments, before.service), "nothing credited or taken"
    await world.verify_ledger()


async def _sent(world: World, reference: str) -> bool:
    return (await world.collection(reference)).provider_checkout_request_id is not None


async def test_an_intermediate_callback_changes_nothing(world: World) -> None:
    reference = await _pay(world, TIMES_OUT)
    await eventually(lambda: _sent(world, reference), "the push to be sent")
    path = airtel_callback_path(world.settings, simulator=True)
    reply = await world.http.post(path, json=_callback(world, reference, status="TIP"))
    assert reply.status_code == 200
    assert (await world.collection(reference)).status == "SENT"


async def test_a_push_whose_reply_was_lost_is_still_settled_by_the_enquiry(
    start_malipo: StartMalipo, mailbox: Mailbox
) -> None:
    """Airtel took the push but its reply never came back (a 502 from a gateway in between): malipo
    never pushes again, and asks Airtel about it by our reference, which the push was sent with."""
    world = await start_malipo(stk_query_after_seconds=0.1)
    mounted = world.app.state.airtel_simulator
    faults = Faults(mounted.simulator.app)
    lost = Fault(502, "Bad Gateway", after=True, times=1)
    faults.faults = {"/_sim/airtel/merchant/v1/payments/": lost, "/merchant/v1/payments/": lost}
    mounted.mount.app = faults
    reference = await _pay(world, CALLBACK_LOST, mailbox)
    final = await world.final_status(reference, timeout=15)
    assert final["status"] == "SUCCESS"
    assert world.airtel.requests["collect"] == 1, "pushed once"
    collection = await world.collection(reference)
    assert collection.mpesa_receipt == world.airtel.pushes[reference].receipt
    assert len(await _journals_of(world, reference)) == 1
    await world.verify_ledger()
