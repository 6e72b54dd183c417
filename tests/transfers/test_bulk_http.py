"""Bulk mobile payouts and client-to-client transfers over real HTTP (malipo, the Daraja
simulator): each entry is checked on its own, accepted ones move money (held and paid by M-Pesa
one by one, or credited to the destination client at once, one journal per entry), rejected ones
are listed with their field and reason and move nothing. The destination client sees its
incoming entries; a third client sees none."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
from sqlalchemy import select

from malipo.identity.models import ClientStatus
from malipo.ledger.models import Journal
from malipo.transfers.models import Transfer
from tests.factories import Merchant, make_client, make_merchant
from tests.fixtures.world import World, eventually, fund_payments

PAID = "254711222333"  # the Daraja simulator pays it
INITIATOR_INVALID = "254700000011"  # the Daraja simulator fails it (2001)


async def _post(
    world: World, path: str, body: dict[str, Any], merchant: Merchant | None = None
) -> httpx.Response:
    return await world.http.post(f"/api/v1/payments/{path}", json=body, headers=(merchant or world.a).headers)


async def _final_entries(world: World, batch_id: str, count: int) -> list[Transfer]:
    async def done() -> list[Transfer] | None:
        async with world.db.transaction() as session:
            rows = list(
                (
                    await session.scalars(select(Transfer).where(Transfer.batch_id == uuid.UUID(batch_id)))
                ).all()
            )
        return rows if len(rows) == count and all(r.status in ("COMPLETED", "FAILED") for r in rows) else None

    return await eventually(done, f"the {count} entries of {batch_id} to finish", 20.0)  # type: ignore[no-any-return]


async def test_bulk_mobile_pays_the_good_entries_and_lists_the_bad_ones(world: World) -> None:
    await fund_payments(world, 10_000_00)
    before = await world.balances()
    reply = await _post(
        world,
        "mobile/bulk",
        {
            "payments": [
                {"phoneNumber": PAID, "amount": 500, "narration": "Commission May"},
                {"phoneNumber": "12", "amount": 100},
                {"phoneNumber": INITIATOR_INVALID, "amount": "300"},
                {"phoneNumber": PAID, "amount": "10.50"},
                {"phoneNumber": PAID, "amount": 1_000_000},
            ]
        },
    )
    assert reply.status_code == 201, reply.text
    body = reply.json()
    assert [e["accountNumber"] for e in body["accepted"]] == [PAID, INITIATOR_INVALID]
    assert [(r["index"], r["field"]) for r in body["rejected"]] == [
        (1, "payments.1.phoneNumber"),
        (3, "payments.3.amount"),
        (4, "payments.4.amount"),
    ]
    assert "whole shillings" in body["rejected"][1]["reason"]
    fee = body["accepted"][0]["fee"]
    rows = await _final_entries(world, body["batchId"], 2)
    by_phone = {r.account_number: r for r in rows}
    assert by_phone[PAID].status == "COMPLETED"
    assert (by_phone[INITIATOR_INVALID].status, by_phone[INITIATOR_INVALID].reason_code) == ("FAILED", "2001")
    after = await world.balances()
    fee_minor = int(fee.replace(".", ""))
    assert after.payments == (before.payments[0] - 500_00, 0)
    assert after.service == (before.service[0] - fee_minor, 0)
    completed = await world.http.get("/api/v1/payments/transactions/completed", headers=world.a.headers)
    assert [t["narration"] for t in completed.json()["items"]] == ["Commission May"]
    await world.verify_ledger()


async def test_a_bulk_with_no_good_entry_is_a_422_and_holds_nothing(world: World) -> None:
    await fund_payments(world, 1_000_00)
    before = await world.balances()
    reply = await _post(world, "mobile/bulk", {"payments": [{"phoneNumber": "12", "amount": 100}]})
    assert reply.status_code == 422
    assert "payments.0.phoneNumber" in reply.text
    assert await world.balances() == before
    assert await world.count(Transfer) == 0


async def _pension_fund(world: World) -> Merchant:
    return await make_merchant(world.db, "pension")


async def test_client_to_client_entries_reach_the_destination_one_journal_each(world: World) -> None:
    await fund_payments(world, 5_000_00)
    fund = await _pension_fund(world)
    before_a = await world.balances()
    before_fund = await world.balances(fund)
    reply = await _post(
        world,
        "client-transfers/bank",
        {
            "destinationClientId": str(fund.client_id),
            "accountNumber": "0030004445556",
            "entries": [
                {"amount": "1200.00", "narration": "NASSIT May: A. Kamara", "reference": "EMP-001",
                 "beneficiaryName": "Aminata Kamara"},
                {"amount": "800.00", "narration": "NASSIT May: J. Koroma", "reference": "EMP-002",
                 "beneficiaryName": "John Koroma"},
                {"amount": "9000.00", "narration": "too much"},
            ],
        },
    )  # fmt: skip
    assert reply.status_code == 201, reply.text
    body = reply.json()
    assert [e["entryReference"] for e in body["accepted"]] == ["EMP-001", "EMP-002"]
    assert [(r["index"], r["field"]) for r in body["rejected"]] == [(2, "entries.2.amount")]
    assert {e["status"] for e in body["accepted"]} == {"COMPLETED"}
    assert (await world.balances()).payments == (before_a.payments[0] - 2_000_00, 0)
    assert (await world.balances(fund)).payments == (before_fund.payments[0] + 2_000_00, 0)
    async with world.db.transaction() as session:
        narrations = set(
            (
                await session.scalars(select(Journal.description).where(Journal.kind == "client_transfer"))
            ).all()
        )
    assert narrations == {"NASSIT May: A. Kamara", "NASSIT May: J. Koroma"}

    incoming = (await world.http.get("/api/v1/payments/transactions/incoming", headers=fund.headers)).json()
    assert sorted(t["beneficiaryName"] for t in incoming["items"]) == ["Aminata Kamara", "John Koroma"]
    for merchant in (world.a, world.b):  # the sender's own incoming list, and a third client's
        assert (
            await world.http.get("/api/v1/payments/transactions/incoming", headers=merchant.headers)
        ).json()["total"] == 0
    entry = body["accepted"][0]["transactionId"]
    assert (
        await world.http.get(f"/api/v1/payments/transactions/{entry}", headers=world.b.headers)
    ).status_code == 404
    await world.verify_ledger()


async def test_client_to_client_by_phone_credits_the_destination(world: World) -> None:
    await fund_payments(world, 1_000_00)
    fund = await _pension_fund(world)
    reply = await _post(
        world,
        "client-transfers/mobile",
        {"destinationClientId": str(fund.client_id), "phoneNumber": "+254712000111",
         "entries": [{"amount": 100, "narration": "May"}, {"amount": 50, "narration": "June"}]},
    )  # fmt: skip
    assert reply.status_code == 201, reply.text
    assert [e["accountNumber"] for e in reply.json()["accepted"]] == ["+254712000111"] * 2
    assert (await world.balances(fund)).payments[0] == 150_00


async def test_the_destination_must_be_another_active_client(world: World) -> None:
    await fund_payments(world, 1_000_00)
    async with world.db.transaction() as session:
        pending = await make_client(session, "pending-fund", now=datetime.now(UTC))
        pending.status = ClientStatus.PENDING
    before = await world.balances()
    for destination in (str(pending.id), str(world.a.client_id), "01a00000-0000-7000-8000-000000000000"):
        reply = await _post(
            world,
            "client-transfers/mobile",
            {
                "destinationClientId": destination,
                "phoneNumber": "+254712000111",
                "entries": [{"amount": 100}],
            },
        )
        assert reply.status_code == 422, reply.text
        assert "destinationClientId" in reply.text
    assert await world.balances() == before
