"""The reversal result callback is checked against the refund before money moves: another
request's ids, another amount or receipt are refused (409) and change nothing; the refund's own
result completes it once; a repeat changes nothing; an unknown address is a 404."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import update

from malipo.refunds import service
from malipo.refunds.models import Refund
from tests.fixtures.world import PAYS, Sim, StartMalipo, World, eventually
from tests.refunds.test_refunds import active_refund_holds, ask_refund, collected


def _result(refund: Any, receipt: str, *, amount: float, **head: Any) -> dict[str, Any]:
    return {
        "Result": {
            "ResultType": 0, "ResultCode": 0, "ResultDesc": "The service request is processed successfully.",
            "OriginatorConversationID": refund.originator_conversation_id,
            "ConversationID": refund.conversation_id, "TransactionID": "SKE52PAWR9",
            "ResultParameters": {"ResultParameter": [
                {"Key": "Amount", "Value": amount}, {"Key": "OriginalTransactionID", "Value": receipt},
                {"Key": "TransCompletedTime", "Value": 20211114132711}, {"Key": "Charge", "Value": 0.0},
            ]},
        } | head
    }  # fmt: skip


async def _pending(world: World, sim: Sim) -> tuple[Any, str, str]:
    """A collection of 100, then a refund of 40 whose reversal result the simulator holds back."""
    reference = await collected(world, 100, PAYS)
    sim.sim.callback_delay = 60.0  # the simulator's own result will come too late for this test
    reply = await ask_refund(world, reference, amount=40)
    assert reply.status_code == 201, reply.text

    async def sent() -> Any:
        async with world.db.transaction() as session:
            refund = await service.refund_for_token(
                session, service.callback_token(world.settings, uuid.UUID(reply.json()["id"]))
            )
        return refund if refund.conversation_id else None

    refund = await eventually(sent, "the reversal to be sent")
    receipt = (await world.collection(reference)).mpesa_receipt or ""
    return refund, receipt, service.callback_token(world.settings, refund.id)


async def test_a_result_for_another_request_amount_or_receipt_changes_nothing_then_its_own_completes_once(
    start_malipo: StartMalipo, faulty_sim: tuple[Sim, Any]
) -> None:
    sim, _faults = faulty_sim
    world = await start_malipo(sim=sim)
    refund, receipt, token = await _pending(world, sim)
    url = f"/callbacks/daraja/{token}/reversal"
    before = await world.balances()
    forged = [
        _result(refund, receipt, amount=40.0, ConversationID="AG_20211114_000000000000000000"),
        _result(refund, receipt, amount=40.0, OriginatorConversationID="1234-5678-1"),
        _result(refund, receipt, amount=100.0),
        _result(refund, "QWE0000000", amount=40.0),
    ]
    for body in forged:
        reply = await world.http.post(url, json=body)
        assert reply.status_code == 409, reply.text
        assert reply.json()["code"] == "callback_mismatch"
    assert await world.balances() == before, "nothing moved"
    assert len(await active_refund_holds(world)) == 1

    own = await world.http.post(url, json=_result(refund, receipt, amount=40.0))
    assert own.status_code == 200, own.text
    assert own.json() == {"ResultCode": 0, "ResultDesc": "Accepted"}
    after = await world.balances()
    assert after.payments == (60_00, 0)
    assert await world.journals(kind="refund") != []

    failure = _result(refund, receipt, amount=40.0, ResultCode="R000001", ResultDesc="already reversed")
    for body in (_result(refund, receipt, amount=40.0), failure):  # a repeat, then a late failure
        reply = await world.http.post(url, json=body)
        assert reply.status_code == 200, reply.text
    assert await world.balances() == after, "a repeated or late result changes nothing"
    assert len(await world.journals(kind="refund")) == 1
    await world.verify_ledger()

    unknown = await world.http.post(
        "/callbacks/daraja/not-a-token/reversal", json=_result(refund, receipt, amount=40.0)
    )
    assert unknown.status_code == 404
    malformed = await world.http.post(url, json={"Result": {"ResultCode": 0}})
    assert malformed.status_code == 422
    text = await world.http.post(url, content=b"x", headers={"content-type": "text/plain"})
    assert text.status_code == 415


async def test_a_result_that_arrives_before_the_acknowledgement_is_recorded_keeps_its_conversation_ids(
    start_malipo: StartMalipo, faulty_sim: tuple[Sim, Any]
) -> None:
    """M-Pesa's result can reach malipo before the worker has stored the acknowledgement's ids."""
    sim, _faults = faulty_sim
    world = await start_malipo(sim=sim)
    refund, receipt, token = await _pending(world, sim)
    async with world.db.transaction() as session:  # as if the worker had not yet recorded the ack
        await session.execute(
            update(Refund)
            .where(Refund.id == refund.id)
            .values(conversation_id=None, originator_conversation_id=None)
        )
    reply = await world.http.post(
        f"/callbacks/daraja/{token}/reversal", json=_result(refund, receipt, amount=40.0)
    )
    assert reply.status_code == 200, reply.text
    view = (await world.http.get(f"/api/v1/refunds/{refund.id}", headers=world.a.headers)).json()
    assert view["status"] == "completed"
    assert view["conversationId"] == refund.conversation_id
    assert view["originatorConversationId"] == refund.originator_conversation_id
    assert (await world.balances()).payments == (60_00, 0)
