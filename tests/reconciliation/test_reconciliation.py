"""A reconciliation day end to end: malipo serving over HTTP, the Daraja simulator's Pull
Transactions statement with one of each exception planted, the Airtel simulator's enquiry; the
report's totals tied to the ledger, rerun idempotent, each exception resolved once with the
ledger balanced after each; and who may see it."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import update

from malipo.ledger.models import AccountKind, Journal
from malipo.payouts.models import Payout
from malipo.reconciliation.models import ItemKind, ItemStatus
from tests.fixtures.world import PAYS, Sim, StartMalipo, World, eventually, fund_payments, payout_by_reference
from tests.reconciliation.helpers import (
    backdate_push,
    operator,
    reconciling_world,
    run_day,
    system_balance,
    today,
)

CALLBACK_LOST = "254700000006"  # the simulator pays it and never calls back: only a query tells


async def _paid(world: World, amount: int, phone: str) -> str:
    reference = await world.queued(amount, phone)
    assert (await world.final_status(reference))["status"] == "SUCCESS"
    return reference


async def _receipt(sim: Sim, reference: str) -> str:
    async def paid() -> str | None:
        push = sim.push_for(reference)
        return push.receipt if push is not None else None

    return await eventually(paid, f"the simulator to pay {reference}")  # type: ignore[no-any-return]


async def _plant(sim: Sim, action: str, body: dict[str, Any]) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=sim.url) as http:
        reply = await http.post(f"/_sim/statement/{action}", json=body)
    assert reply.status_code == 200, reply.text
    return reply.json()  # type: ignore[no-any-return]


def _by_kind(report: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    for item in report["items"]:
        found.setdefault(item["kind"], []).append(item)
    return found


async def _suspense_journals(world: World) -> int:
    return len(await world.journals(kind="reconciliation_suspense"))


async def test_a_day_with_each_exception_ties_to_the_ledger_reruns_and_resolves(
    start_malipo: StartMalipo, own_sim: Sim
) -> None:
    world = await reconciling_world(start_malipo, own_sim)
    matched = await _paid(world, 100, PAYS)
    removed = await _paid(world, 50, "254711222334")
    changed = await _paid(world, 70, "254711222335")
    lost = await world.queued(30, CALLBACK_LOST)  # paid; no callback ever: it stays SENT
    await _receipt(own_sim, lost)
    assert (await world.collection(lost)).status == "SENT"
    await backdate_push(world, lost)  # its reconcile delay long past

    shortcode = world.settings.daraja_shortcode
    extra = (await _plant(own_sim, "extra", {"ShortCode": shortcode, "Amount": 321, "MSISDN": "254711000001",
                                            "BillRefNumber": "NO-SUCH-ORDER"}))["TransactionID"]  # fmt: skip
    to_refund = (
        await _plant(own_sim, "extra", {"ShortCode": shortcode, "Amount": 45, "MSISDN": "254711000002"})
    )["TransactionID"]
    await _plant(own_sim, "remove", {"TransactionID": await _receipt(own_sim, removed)})
    await _plant(own_sim, "amount", {"TransactionID": await _receipt(own_sim, changed), "Amount": 65})
    clearing_before = await system_balance(world, AccountKind.MOBILE_MONEY_CLEARING)

    day = today(world)
    result = await run_day(world, day)

    # The collection left SENT was settled by query before the report, and matched.
    assert (await world.collection(lost)).status == "SUCCESS"
    assert result.run.status == "complete", result.run.notes
    kinds = {i.kind for i in result.items}
    assert kinds == {
        ItemKind.MATCHED,
        ItemKind.MISSING_IN_MALIPO,
        ItemKind.MISSING_AT_RAIL,
        ItemKind.AMOUNT_MISMATCH,
    }

    ops = await operator(world)
    try:
        reply = await ops.get(f"/api/v1/reconciliation/{day.isoformat()}", params={"mode": "test"})
        assert reply.status_code == 200, reply.text
        report = reply.json()
        items = _by_kind(report)
        assert sorted(i["billReference"] for i in items["matched"]) == sorted([matched, lost])
        assert {i["receipt"] for i in items["missing_in_malipo"]} == {extra, to_refund}
        [at_rail] = items["missing_at_rail"]
        assert (at_rail["billReference"], at_rail["malipoAmount"], at_rail["railAmount"]) == (
            removed,
            "50.00",
            None,
        )
        [mismatch] = items["amount_mismatch"]
        assert (mismatch["billReference"], mismatch["malipoAmount"], mismatch["railAmount"]) == (
            changed,
            "70.00",
            "65.00",
        )

        totals = report["totals"]["KES"]
        assert totals["railTotal"] == (100 + 30 + 65 + 321 + 45) * 100
        assert totals["malipoTotal"] == (100 + 50 + 70 + 30) * 100
        assert totals["missingInMalipo"] == {"count": 2, "railAmount": 366_00, "malipoAmount": 0}
        assert totals["missingAtRail"]["count"] == totals["amountMismatch"]["count"] == 1
        ledger = totals["ledger"]
        assert ledger["ties"] is True
        assert ledger["clearingIn"] == ledger["expected"] == totals["malipoTotal"] + 366_00
        # Booked into suspense at once: one journal each, against the clearing account.
        assert await system_balance(world, AccountKind.SUSPENSE) == 366_00
        assert (
            await system_balance(world, AccountKind.MOBILE_MONEY_CLEARING) - clearing_before
            == -366_00 - 30_00
        )
        assert await _suspense_journals(world) == 2
        await world.verify_ledger()

        # CSV: the same items, a header row first.
        reply = await ops.get(
            f"/api/v1/reconciliation/{day.isoformat()}", params={"mode": "test", "format": "csv"}
        )
        assert reply.status_code == 200
        assert reply.headers["content-type"].startswith("text/csv")
        rows = list(csv.DictReader(io.StringIO(reply.text)))
        assert sorted(r["kind"] for r in rows) == sorted(i["kind"] for i in report["items"])
        assert {r["receipt"] for r in rows if r["kind"] == "missing_in_malipo"} == {extra, to_refund}

        # Rerun: the same report, nothing booked twice.
        again = await run_day(world, day)
        assert again.run.runs == 2
        assert sorted((i.match_key, i.kind) for i in again.items) == sorted(
            (i.match_key, i.kind) for i in result.items
        )
        assert await _suspense_journals(world) == 2
        assert await system_balance(world, AccountKind.SUSPENSE) == 366_00

        ids = {key: i["id"] for i in report["items"] for key in (i["receipt"], i["billReference"]) if key}
        resolve = "/api/v1/reconciliation/exceptions/{}/resolve"

        # Missing in malipo → attached to merchant A's payments wallet, its fee from its service wallet.
        before = await world.balances()
        attach = {"action": "attach", "clientId": str(world.a.client_id), "note": "typo in the account"}
        reply = await ops.post(resolve.format(ids[extra]), json=attach)
        assert reply.status_code == 200, reply.text
        assert (reply.json()["status"], reply.json()["resolution"]) == ("resolved", "attach")
        after = await world.balances()
        fee = before.service[0] - after.service[0]
        assert fee > 0
        assert after.payments[0] - before.payments[0] == 321_00
        assert after.fee_revenue - before.fee_revenue == fee
        assert await system_balance(world, AccountKind.SUSPENSE) == 45_00
        await world.verify_ledger()
        again = await ops.post(resolve.format(ids[extra]), json={"action": "write_off"})
        assert again.status_code == 409, again.text

        # Refund: the payer is paid back by Daraja's reversal; pending until its result, then
        # suspense → clearing; nothing else may resolve it meanwhile.
        reply = await ops.post(resolve.format(ids[to_refund]), json={"action": "refund"})
        assert reply.status_code == 200, reply.text
        assert reply.json()["status"] == "pending"
        again = await ops.post(resolve.format(ids[to_refund]), json={"action": "write_off"})
        assert again.status_code == 409, again.text

        async def refunded() -> bool:
            return await system_balance(world, AccountKind.SUSPENSE) == 0

        await eventually(refunded, "the reversal's result to take the 45 out of suspense", timeout=15)
        assert len(await world.journals(kind="reconciliation_refund")) == 1
        assert await system_balance(world, AccountKind.WRITE_OFF) == 0
        await world.verify_ledger()

        # Missing at the rail: written off (clearing corrected: malipo credited 50, the rail had none).
        clearing = await system_balance(world, AccountKind.MOBILE_MONEY_CLEARING)
        reply = await ops.post(resolve.format(ids[removed]), json={"action": "write_off"})
        assert reply.status_code == 200, reply.text
        assert await system_balance(world, AccountKind.MOBILE_MONEY_CLEARING) - clearing == 50_00
        await world.verify_ledger()

        # Amount mismatch: the 5 the rail does not have, written off.
        reply = await ops.post(resolve.format(mismatch["id"]), json={"action": "write_off"})
        assert reply.status_code == 200, reply.text
        assert await system_balance(world, AccountKind.MOBILE_MONEY_CLEARING) - clearing == 55_00
        assert await system_balance(world, AccountKind.WRITE_OFF) == -55_00
        await world.verify_ledger()

        # A matched item has nothing to resolve; an unknown one is 404; a bad action names the field.
        reply = await ops.post(resolve.format(ids[matched]), json={"action": "write_off"})
        assert reply.status_code == 409
        reply = await ops.post(
            resolve.format("0190f6c2-7a51-7cc1-9d4e-6a1f0c2b9e11"), json={"action": "write_off"}
        )
        assert reply.status_code == 404
        reply = await ops.post(resolve.format(ids[matched]), json={"action": "burn"})
        assert reply.status_code == 422
        assert "action" in reply.text

        # Rerun after the resolutions: they stand, nothing is booked again.
        journals = len(await world.journals())
        final = await run_day(world, day)
        statuses = {i.match_key: i.status for i in final.items}
        assert sorted(statuses.values()).count(ItemStatus.RESOLVED) == 4
        assert len(await world.journals()) == journals
        await world.verify_ledger()
    finally:
        await ops.aclose()


async def test_only_operator_staff_see_or_resolve_it(start_malipo: StartMalipo, own_sim: Sim) -> None:
    world = await reconciling_world(start_malipo, own_sim)
    day = today(world)
    await run_day(world, day)
    reply = await world.http.get(f"/api/v1/reconciliation/{day.isoformat()}", headers=world.a.headers)
    assert reply.status_code == 403, reply.text
    reply = await world.http.post(
        "/api/v1/reconciliation/exceptions/0190f6c2-7a51-7cc1-9d4e-6a1f0c2b9e11/resolve",
        json={"action": "write_off"}, headers=world.a.headers,
    )  # fmt: skip
    assert reply.status_code == 403, reply.text
    ops = await operator(world)
    try:
        assert (
            await ops.get(f"/api/v1/reconciliation/{day.isoformat()}", params={"mode": "test"})
        ).status_code == 200
        assert (
            await ops.get("/api/v1/reconciliation/2020-01-01", params={"mode": "test"})
        ).status_code == 404
        assert (await ops.get("/api/v1/reconciliation/not-a-date")).status_code == 422
    finally:
        await ops.aclose()


async def test_a_day_older_than_the_rail_keeps_is_reported_as_not_reconciled(
    start_malipo: StartMalipo, own_sim: Sim
) -> None:
    world = await reconciling_world(start_malipo, own_sim)
    old = today(world) - timedelta(days=4)
    result = await run_day(world, old)
    assert result.run.status == "incomplete"
    assert "48 hours" in result.run.notes["daraja"]
    assert result.items == []


AIRTEL = "63903"
AIRTEL_TIMES_OUT = "254733000003"  # the payer never answers: the enquiries fail it


async def test_an_airtel_collection_failed_after_its_enquiries_that_airtel_says_paid_is_an_exception(
    start_malipo: StartMalipo, own_sim: Sim
) -> None:
    world = await reconciling_world(start_malipo, own_sim, stk_query_after_seconds=0.2)
    reference = await world.queued(1000, AIRTEL_TIMES_OUT, network_code=AIRTEL)
    assert (await world.final_status(reference, timeout=15))["status"] == "FAILED"
    payments_before = (await world.balances()).payments
    # The payer paid after all (late): Airtel's enquiry now says so.
    push = world.airtel.pushes[reference]
    push.status, push.receipt = "TS", "MP261207.1200.A00001"

    result = await run_day(world, today(world))
    [item] = [i for i in result.items if i.rail == "airtel"]
    assert (item.kind, item.receipt, item.rail_amount) == (
        ItemKind.MISSING_IN_MALIPO,
        "MP261207.1200.A00001",
        1000_00,
    )
    assert (item.collection_id, item.client_id) == ((await world.collection(reference)).id, world.a.client_id)
    # Never changed silently: the collection stays FAILED, nothing credited; the money is in suspense.
    assert (await world.collection(reference)).status == "FAILED"
    assert (await world.balances()).payments == payments_before
    assert await system_balance(world, AccountKind.SUSPENSE) == 1000_00
    assert result.run.totals["KES"]["ledger"]["ties"] is True
    await world.verify_ledger()

    ops = await operator(world)
    try:  # attached to its own merchant (no clientId needed: the collection names it)
        reply = await ops.post(
            f"/api/v1/reconciliation/exceptions/{item.id}/resolve", json={"action": "attach"}
        )
        assert reply.status_code == 200, reply.text
    finally:
        await ops.aclose()
    assert (await world.balances()).payments[0] - payments_before[0] == 1000_00
    assert await system_balance(world, AccountKind.SUSPENSE) == 0
    journals: list[Journal] = await world.journals(kind="reconciliation_attach")
    assert len(journals) == 1
    await world.verify_ledger()


async def test_a_refund_is_pending_until_the_reversal_result_then_journals_suspense_to_clearing(
    start_malipo: StartMalipo, own_sim: Sim
) -> None:
    world = await reconciling_world(start_malipo, own_sim)
    shortcode = world.settings.daraja_shortcode
    receipt = (
        await _plant(own_sim, "extra", {"ShortCode": shortcode, "Amount": 45, "MSISDN": "254711000002"})
    )["TransactionID"]
    result = await run_day(world, today(world))
    [item] = [i for i in result.items if i.receipt == receipt]
    ops = await operator(world)
    try:
        reply = await ops.post(
            f"/api/v1/reconciliation/exceptions/{item.id}/resolve", json={"action": "refund"}
        )
        assert reply.status_code == 200, reply.text
        assert reply.json()["status"] == "pending"
    finally:
        await ops.aclose()

    async def refunded() -> bool:
        return await system_balance(world, AccountKind.SUSPENSE) == 0

    await eventually(refunded, "the reversal's result to journal suspense → clearing", timeout=15)
    assert len(await world.journals(kind="reconciliation_refund")) == 1
    await world.verify_ledger()


async def test_a_payout_left_without_a_result_is_settled_by_query_before_the_report(
    start_malipo: StartMalipo, own_sim: Sim
) -> None:
    world = await reconciling_world(start_malipo, own_sim, payout_query_after_seconds=3600)
    await fund_payments(world, 500_00)
    body = {"amount": 300, "phone_number": "254733000014", "network_code": AIRTEL, "channel": "mobile"}
    reply = await world.http.post("/api/v2/withdraw", json=body, headers=world.a.headers)
    assert reply.status_code == 201, reply.text
    reference = str(reply.json()["merchant_reference"])

    async def paid_at_airtel() -> bool:
        payout = await payout_by_reference(world, reference)
        found = world.airtel.disbursements.get(payout.originator_conversation_id)
        return payout.sent_at is not None and found is not None and found.status == "TS"

    await eventually(paid_at_airtel, "Airtel to pay the payout (its callback is lost)")
    payout = await payout_by_reference(world, reference)
    assert payout.status == "SENT"
    async with world.db.transaction() as session:  # its query delay long past
        await session.execute(
            update(Payout).where(Payout.id == payout.id).values(sent_at=payout.sent_at - timedelta(hours=2))
        )

    await run_day(world, today(world))
    assert (await payout_by_reference(world, reference)).status == "SUCCESS"
    assert (await world.balances()).payments[0] == 500_00 - 300_00
    await world.verify_ledger()
