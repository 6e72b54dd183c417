"""Refunds of collections end to end: Pay Hero's API collects, /api/v1 refunds, malipo's worker
asks the Daraja simulator for a reversal over HTTP and its result comes back to malipo's callback.
The books are read after each: the payments wallet, its holds, the clearing account, the journals,
and ``ledger verify``. On SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
from sqlalchemy import select, update

from malipo.collections.models import Collection
from malipo.ledger.models import Hold
from malipo.providers.daraja.simulator import REVERSAL_TIMEOUT_PHONE
from malipo.refunds.models import Refund
from tests.fixtures.world import PAYS, Mailbox, World, eventually


async def collected(
    world: World, amount: int = 100, phone: str = PAYS, mailbox: Mailbox | None = None, **extra: Any
) -> str:
    reference = await world.queued(amount, phone, mailbox, **extra)
    assert (await world.final_status(reference))["status"] == "SUCCESS"
    return reference


async def ask_refund(
    world: World,
    collection: str,
    *,
    headers: dict[str, str] | None = None,
    key: str | None = None,
    **body: Any,
) -> httpx.Response:
    sent = dict(headers or world.a.headers)
    if key is not None:
        sent["Idempotency-Key"] = key
    return await world.http.post(
        f"/api/v1/collections/{collection}/refund", json={"reason": "Order cancelled"} | body, headers=sent
    )


async def final_refund(world: World, refund_id: str) -> dict[str, Any]:
    async def final() -> dict[str, Any] | None:
        reply = await world.http.get(f"/api/v1/refunds/{refund_id}", headers=world.a.headers)
        assert reply.status_code == 200, reply.text
        body: dict[str, Any] = reply.json()
        return body if body["status"] != "pending" else None

    return await eventually(final, f"refund {refund_id} to finish")  # type: ignore[no-any-return]


async def refunded(world: World, collection: str, amount: int | None = None) -> dict[str, Any]:
    body = {} if amount is None else {"amount": amount}
    reply = await ask_refund(world, collection, **body)
    assert reply.status_code == 201, reply.text
    assert reply.json()["status"] == "pending"
    return await final_refund(world, reply.json()["id"])


async def active_refund_holds(world: World) -> list[Hold]:
    async with world.db.transaction() as session:
        rows = await session.scalars(
            select(Hold).where(Hold.status == "active", Hold.reference.like("refund:%"))
        )
        return list(rows.all())


async def test_a_partial_then_a_full_refund_take_the_money_back_through_the_clearing_account(
    world: World, mailbox: Mailbox
) -> None:
    reference = await collected(world, 100, mailbox=mailbox)
    collection = await world.collection(reference)
    before = await world.balances()
    assert before.payments == (100_00, 0)

    first = await refunded(world, reference, 40)
    assert (first["status"], first["amount"], first["resultCode"]) == ("completed", "40.00", "0")
    assert first["reversalReceipt"]
    assert first["conversationId"]
    assert first["mpesaReceipt"] == collection.mpesa_receipt
    middle = await world.balances()
    assert middle.payments == (60_00, 0), "the refund left the wallet and its hold is spent"
    assert middle.clearing - before.clearing == 40_00, "back to the rail's clearing account"

    second = await refunded(world, str(collection.id))  # by id this time; no amount: all that is left
    assert (second["status"], second["amount"]) == ("completed", "60.00")
    after = await world.balances()
    assert after.payments == (0, 0)
    assert after.clearing - before.clearing == 100_00
    journals = await world.journals(kind="refund")
    assert len(journals) == 2
    assert world.sim.sim.reversed[collection.mpesa_receipt or ""] == 100, "the simulator reversed it all"

    listing = await world.http.get(f"/api/v1/collections/{reference}/refunds", headers=world.a.headers)
    assert listing.status_code == 200, listing.text
    body = listing.json()
    assert (body["collected"], body["refunded"], body["refundable"]) == ("100.00", "100.00", "0.00")
    assert [r["id"] for r in body["refunds"]] == [first["id"], second["id"]]

    again = await ask_refund(world, reference)
    assert again.status_code == 409, again.text
    assert "already refunded in full" in again.text
    assert await active_refund_holds(world) == []
    await world.verify_ledger()

    async def told() -> bool:
        return sum(1 for b in mailbox.bodies if b.get("event") == "refund.completed") == 2

    await eventually(told, "the merchant told of both refunds")
    events = [b for b in mailbox.bodies if b.get("event") == "refund.completed"]
    assert {e["data"]["id"] for e in events} == {first["id"], second["id"]}


async def test_a_refund_over_what_was_collected_or_what_is_left_is_refused_and_holds_nothing(
    world: World,
) -> None:
    reference = await collected(world, 100)
    over = await ask_refund(world, reference, amount=150)
    assert over.status_code == 422, over.text
    assert over.json()["errors"][0]["field"] == "amount"
    assert await active_refund_holds(world) == []

    await refunded(world, reference, 60)
    over_left = await ask_refund(world, reference, amount=50)
    assert over_left.status_code == 422, over_left.text
    assert "40.00 left to refund" in over_left.json()["errors"][0]["message"]
    assert (await world.balances()).payments == (40_00, 0)
    cents = await ask_refund(world, reference, amount="10.50")
    assert cents.status_code == 422, cents.text
    await world.verify_ledger()


async def test_concurrent_refunds_never_add_up_to_more_than_was_collected(world: World) -> None:
    reference = await collected(world, 100)
    replies = await asyncio.gather(*(ask_refund(world, reference, amount=30) for _ in range(5)))
    statuses = sorted(r.status_code for r in replies)
    assert statuses == [201, 201, 201, 422, 422], [r.text for r in replies]
    for reply in replies:
        if reply.status_code == 201:
            assert (await final_refund(world, reply.json()["id"]))["status"] == "completed"
    assert (await world.balances()).payments == (10_00, 0)
    await world.verify_ledger()


async def test_the_same_idempotency_key_replays_the_first_refund(world: World) -> None:
    reference = await collected(world, 100)
    key = f"refund-{uuid.uuid4()}"
    first = await ask_refund(world, reference, key=key, amount=20)
    second = await ask_refund(world, reference, key=key, amount=20)
    assert first.status_code == second.status_code == 201
    assert second.headers.get("Idempotent-Replayed") == "true"
    assert first.json()["id"] == second.json()["id"]
    other = await ask_refund(world, reference, key=key, amount=30)
    assert other.status_code == 422, other.text
    await final_refund(world, first.json()["id"])
    async with world.db.transaction() as session:
        assert len((await session.scalars(select(Refund))).all()) == 1
    assert (await world.balances()).payments == (80_00, 0)


async def _failed_refund(world: World, reference: str, mailbox: Mailbox) -> dict[str, Any]:
    before = await world.balances()
    reply = await ask_refund(world, reference)
    assert reply.status_code == 201, reply.text
    result = await final_refund(world, reply.json()["id"])
    assert result["status"] == "failed"
    assert await active_refund_holds(world) == [], "the hold is released"
    assert (await world.balances()).payments == before.payments == (100_00, 0), "nothing left the wallet"
    assert await world.journals(kind="refund") == [], "nothing journalled"
    await world.verify_ledger()

    async def told() -> list[dict[str, Any]]:
        return [b for b in mailbox.bodies if b.get("event") == "refund.failed"]

    [event] = await eventually(told, "the merchant told the refund failed")
    assert event["data"]["id"] == result["id"]
    return result


async def test_a_receipt_already_reversed_fails_the_refund_with_r000001(
    world: World, mailbox: Mailbox
) -> None:
    reference = await collected(world, 100, mailbox=mailbox)
    receipt = (await world.collection(reference)).mpesa_receipt or ""
    world.sim.sim._command_state()
    world.sim.sim.reversed[receipt] = 100  # reversed from the M-Pesa org portal, not through malipo
    result = await _failed_refund(world, reference, mailbox)
    assert result["resultCode"] == "R000001"
    assert "already been reversed" in result["resultDesc"]


async def test_an_unknown_receipt_fails_the_refund_with_r000002(world: World, mailbox: Mailbox) -> None:
    reference = await collected(world, 100, mailbox=mailbox)
    async with world.db.transaction() as session:
        await session.execute(
            update(Collection).where(Collection.reference == reference).values(mpesa_receipt="ZZZ0000000")
        )
    result = await _failed_refund(world, reference, mailbox)
    assert result["resultCode"] == "R000002"
    assert "OriginalTransactionID" in result["resultDesc"]


async def test_a_reversal_that_times_out_in_the_queue_fails_the_refund(
    world: World, mailbox: Mailbox
) -> None:
    reference = await collected(world, 100, phone=REVERSAL_TIMEOUT_PHONE, mailbox=mailbox)
    result = await _failed_refund(world, reference, mailbox)
    assert result["resultCode"] == "1"


async def test_a_collection_paid_into_the_merchants_own_paybill_is_not_refunded(world: World) -> None:
    created = await world.http.post(
        "/api/v1/channels",
        json={"channelType": "paybill", "shortCode": "522522", "description": "Shop paybill"},
        headers=world.a.headers,
    )
    assert created.status_code == 201, created.text
    reference = await collected(world, 100, channel_id=created.json()["id"])
    reply = await ask_refund(world, reference)
    assert reply.status_code == 409, reply.text
    assert "your own till/paybill" in reply.json()["detail"]
    assert await active_refund_holds(world) == []


async def test_another_merchants_collection_and_refund_are_404(world: World) -> None:
    reference = await collected(world, 100)
    mine = await refunded(world, reference, 10)
    for reply in (
        await ask_refund(world, reference, headers=world.b.headers),
        await world.http.get(f"/api/v1/collections/{reference}/refunds", headers=world.b.headers),
        await world.http.get(f"/api/v1/refunds/{mine['id']}", headers=world.b.headers),
    ):
        assert reply.status_code == 404, reply.text
    assert (await world.balances()).payments == (90_00, 0)


async def test_an_airtel_collection_refund_is_refused_clearly(world: World) -> None:
    reference = await collected(world, 100, phone="254733123456", network_code="63903")
    reply = await ask_refund(world, reference)
    assert reply.status_code == 409, reply.text
    assert "Airtel Money collections cannot be refunded" in reply.json()["detail"]
    assert await active_refund_holds(world) == []
