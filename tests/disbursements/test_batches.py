"""Disbursement batches end to end over real HTTP: malipo, its worker and the Daraja simulator
(B2C to phones, B2B to banks' paybills). Each test checks the ledger, not just the replies."""

from __future__ import annotations

from malipo.disbursements.models import ItemStatus
from tests.disbursements.helpers import (
    ACCOUNT,
    BATCHES,
    FEE,
    INITIATOR_INVALID,
    PAID,
    PAID_TOO,
    bank,
    batch,
    items,
    mobile,
    process,
    settled,
    submit,
)
from tests.fixtures.world import World, active_holds, fund_payments


async def test_a_batch_is_checked_per_item_stored_then_paid_and_ties_to_the_ledger(world: World) -> None:
    await fund_payments(world, 10_000_00)
    before = await world.balances()
    reply = await submit(
        world,
        [
            mobile(PAID, 100, narration="Salary", reference="EMP-1"),
            mobile("0712345678", "250"),
            bank(ACCOUNT, 1000),
            mobile("12345", 100),  # not a phone number
            mobile(PAID, 5),  # below M-Pesa's smallest payment
            bank(ACCOUNT, 100, code="16"),  # a bank with no paybill known
            mobile(PAID, "-100"),  # a negative amount
        ],
    )
    assert reply.status_code == 201, reply.text
    body = reply.json()
    assert (body["acceptedCount"], body["rejectedCount"], body["itemCount"]) == (3, 4, 3)
    assert body["status"] == "Ready"
    assert body["totalAmount"] == "1350.00"
    assert len(body["itemIds"]) == 3
    assert [(r["row"], r["field"]) for r in body["rejected"]] == [
        (4, "destination"), (5, "amount"), (6, "bankCode"), (7, "amount"),
    ]  # fmt: skip
    assert after_submit_nothing_moved(await world.balances(), before)
    # A wrong type is a mistake in the request, not in the data: a 422 naming it, nothing stored.
    refused = await submit(world, [mobile(PAID, 100), {"destination": PAID, "amount": True}])
    assert refused.status_code == 422, refused.text
    assert next(e["field"] for e in refused.json()["errors"]).startswith("items.1.amount")

    processed = await process(world, body["batchId"])
    assert processed.status_code == 200, processed.text
    result = processed.json()
    assert sorted(result["processed"]) == sorted(body["itemIds"])
    assert result["skipped"] == []
    assert result["queued"] == 0

    done = await settled(world, body["batchId"])
    assert done["status"] == "Completed"
    assert done["counts"] == {"pending": 0, "processing": 0, "processed": 3, "failed": 0}
    assert done["paidAmount"] == "1350.00"
    assert done["fees"] == "45.00"
    rows = await items(world, body["batchId"])
    assert [r.status for r in rows] == [ItemStatus.PROCESSED] * 3
    assert all(r.completed_at is not None and r.provider_reference for r in rows)
    assert [r.destination for r in rows] == [PAID, "254712345678", ACCOUNT]
    assert rows[0].narration == "Salary"
    assert rows[0].reference == "EMP-1"

    after = await world.balances()
    assert after.payments == (before.payments[0] - 1350_00, 0)
    assert after.service == (before.service[0] - 3 * FEE, 0)
    assert after.fee_revenue == before.fee_revenue + 3 * FEE
    assert await active_holds(world) == 0
    await world.verify_ledger()

    report = await world.http.get(
        f"/api/v1/reports/disbursements/batches/{body['batchId']}/reconciliation", headers=world.a.headers
    )
    assert report.status_code == 200, report.text
    totals = report.json()["totals"]
    assert totals["ties"] is True
    assert (totals["paid"], totals["ledgerPaid"], totals["fees"], totals["ledgerFees"]) == (
        "1350.00", "1350.00", "45.00", "45.00",
    )  # fmt: skip


def after_submit_nothing_moved(after: object, before: object) -> bool:
    return after == before


async def test_a_failed_item_is_retried_as_a_new_attempt_and_processing_again_pays_nobody_twice(
    world: World,
) -> None:
    await fund_payments(world, 10_000_00)
    before = await world.balances()
    body = (await submit(world, [mobile(PAID, 100), mobile(INITIATOR_INVALID, 200)])).json()
    assert (await process(world, body["batchId"])).status_code == 200
    done = await settled(world, body["batchId"])
    assert done["counts"] == {"pending": 0, "processing": 0, "processed": 1, "failed": 1}
    paid, failed = await items(world, body["batchId"])
    assert failed.status == ItemStatus.FAILED
    assert failed.result_code == "2001"

    again = await process(world, body["batchId"])
    assert again.status_code == 200
    assert again.json()["processed"] == []
    assert again.json()["skippedCount"] == 2

    # The failed phone is fixed at the rail's end (here: retried to the same number, which the
    # simulator fails again), and a Processed item is never retried.
    retry = await world.http.post(
        f"{BATCHES}/{body['batchId']}/retry",
        json={"batchId": body["batchId"], "itemIds": [str(failed.id), str(paid.id)]},
        headers=world.a.headers | {"Idempotency-Key": "retry-1"},
    )
    assert retry.status_code == 200, retry.text
    assert retry.json()["processed"] == [str(failed.id)]
    assert [s["itemId"] for s in retry.json()["skipped"]] == [str(paid.id)]
    await settled(world, body["batchId"])
    _paid, failed = await items(world, body["batchId"])
    assert failed.attempts == 2

    retries = await world.http.get("/api/v1/reports/disbursements/retries", headers=world.a.headers)
    assert retries.status_code == 200, retries.text
    assert [(a["itemId"], a["number"], a["status"]) for a in retries.json()["attempts"]] == [
        (str(failed.id), 2, "Failed")
    ]
    failed_report = await world.http.get(
        "/api/v1/reports/disbursements/failed-items", headers=world.a.headers
    )
    assert [i["itemId"] for i in failed_report.json()["items"]] == [str(failed.id)]

    after = await world.balances()
    assert after.payments == (before.payments[0] - 100_00, 0), "only the paid item left the wallet, once"
    assert after.service == (before.service[0] - FEE, 0)
    await world.verify_ledger()
    report = await world.http.get(
        f"/api/v1/reports/disbursements/batches/{body['batchId']}/reconciliation", headers=world.a.headers
    )
    assert report.json()["totals"]["ties"] is True


async def test_a_batch_the_wallet_cannot_cover_pays_what_it_can_and_fails_the_rest(world: World) -> None:
    await fund_payments(world, 250_00)
    body = (await submit(world, [mobile(PAID, 100), mobile(PAID_TOO, 100), mobile(PAID, 100)])).json()
    result = (await process(world, body["batchId"])).json()
    assert len(result["processed"]) == 2
    [(failed)] = result["failed"]
    assert "insufficient balance" in failed["reason"]
    done = await settled(world, body["batchId"])
    assert done["counts"]["processed"] == 2
    assert done["counts"]["failed"] == 1
    assert (await world.balances()).payments == (50_00, 0)
    await world.verify_ledger()


async def test_a_large_batch_is_processed_by_the_worker_in_chunks(start_malipo) -> None:  # type: ignore[no-untyped-def]
    world = await start_malipo(disbursement_inline_items=2, disbursement_chunk=3)
    await fund_payments(world, 10_000_00)
    body = (await submit(world, [mobile(PAID, 10 + n) for n in range(8)])).json()
    result = (await process(world, body["batchId"])).json()
    assert result["processed"] == []
    assert result["queued"] == 8
    done = await settled(world, body["batchId"])
    assert done["counts"]["processed"] == 8
    assert done["paidAmount"] == f"{sum(10 + n for n in range(8))}.00"
    await world.verify_ledger()
    page = await world.http.get(
        f"{BATCHES}/{body['batchId']}/items", params={"pageSize": 5, "page": 2}, headers=world.a.headers
    )
    assert page.status_code == 200, page.text
    assert [i["row"] for i in page.json()["items"]] == [6, 7, 8]
    assert (await batch(world, body["batchId"]))["status"] == "Completed"
