"""Maker-checker on disbursement batches, over real HTTP: a batch totalling more than the
approval threshold (the gateway's, or the client's own) waits until someone of the same client
other than its submitter approves it; until then nothing is held or paid."""

from __future__ import annotations

from typing import Any

from malipo.payouts.models import Payout
from tests.disbursements.helpers import (
    BATCHES,
    FEE,
    PAID,
    PAID_TOO,
    batch,
    mobile,
    process,
    second_api_user,
    settled,
    submit,
)
from tests.fixtures.world import StartMalipo, World, active_holds, fund_payments
from tests.reviews.helpers import Portal, call, portal_user

SETTINGS = "/api/v1/disbursements/settings"


async def approve(world: World, batch_id: str, headers: Any) -> Any:
    return await world.http.post(f"{BATCHES}/{batch_id}/approve", headers=headers)


async def threshold_world(start_malipo: StartMalipo) -> World:
    world = await start_malipo(disbursement_approval_threshold=1000)
    await fund_payments(world, 10_000_00)
    return world


async def test_a_batch_over_the_threshold_is_paid_only_after_someone_else_approves_it(
    start_malipo: StartMalipo,
) -> None:
    world = await threshold_world(start_malipo)
    before = await world.balances()
    reply = await submit(world, [mobile(PAID, 600), mobile(PAID_TOO, 401)])
    assert reply.status_code == 201, reply.text
    submitted = reply.json()
    assert (submitted["status"], submitted["approvalRequired"]) == ("AwaitingApproval", True)
    batch_id = submitted["batchId"]

    refused = await process(world, batch_id)
    assert refused.status_code == 409, refused.text
    assert refused.json()["code"] == "approval_required"
    retried = await world.http.post(
        f"{BATCHES}/{batch_id}/retry", json={"batchId": batch_id, "itemIds": submitted["itemIds"]},
        headers=world.a.headers | {"Idempotency-Key": "retry-early"},
    )  # fmt: skip
    assert retried.status_code == 409, retried.text
    assert retried.json()["code"] == "approval_required"
    assert await world.balances() == before, "nothing is held before approval"
    assert await active_holds(world) == 0
    assert await world.count(Payout) == 0
    waiting = await batch(world, batch_id)
    assert waiting["status"] == "AwaitingApproval"
    assert waiting["counts"]["pending"] == 2
    assert waiting["approvedBy"] is None

    own = await approve(world, batch_id, world.a.headers)
    assert own.status_code == 403, own.text
    assert own.json()["code"] == "submitter_cannot_approve"
    reader = await second_api_user(world, "reader", role="ReadOnly")
    assert (await approve(world, batch_id, reader.headers)).status_code == 403
    assert (await batch(world, batch_id))["status"] == "AwaitingApproval"

    checker = await second_api_user(world, "checker")
    approved = await approve(world, batch_id, checker.headers)
    assert approved.status_code == 200, approved.text
    body = approved.json()
    assert body["status"] == "Ready"
    assert body["approvalRequired"] is True
    assert body["approvedBy"] == str(checker.api_user_id)
    assert body["approvedAt"] is not None
    again = await approve(world, batch_id, checker.headers)
    assert again.status_code == 409, again.text
    assert again.json()["code"] == "not_awaiting_approval"

    paid = await process(world, batch_id)
    assert paid.status_code == 200, paid.text
    assert sorted(paid.json()["processed"]) == sorted(submitted["itemIds"])
    done = await settled(world, batch_id)
    assert done["counts"]["processed"] == 2
    assert (done["paidAmount"], done["approvedBy"]) == ("1001.00", str(checker.api_user_id))
    after = await world.balances()
    assert after.payments == (before.payments[0] - 1001_00, 0)
    assert after.service == (before.service[0] - 2 * FEE, 0)
    assert after.fee_revenue == before.fee_revenue + 2 * FEE
    assert await active_holds(world) == 0
    await world.verify_ledger()


async def test_a_merchant_portal_user_approves_a_live_batch_submitted_by_its_api_user(
    start_malipo: StartMalipo,
) -> None:
    world = await threshold_world(start_malipo)
    reply = await submit(world, [mobile(PAID, 2000)], headers=world.a.live)
    assert reply.status_code == 201, reply.text
    batch_id = reply.json()["batchId"]
    assert reply.json()["status"] == "AwaitingApproval"
    admin = await portal_user(world, "ClientAdmin", world.a.client_id)
    approved = await call(world, "POST", f"{BATCHES}/{batch_id}/approve", admin)
    assert approved.status_code == 200, approved.text
    assert approved.json()["status"] == "Ready"
    assert approved.json()["approvedBy"] is not None
    # Merchant B's admin sees no such batch.
    other = await portal_user(world, "ClientAdmin", world.b.client_id)
    assert (await call(world, "POST", f"{BATCHES}/{batch_id}/approve", other)).status_code == 404


async def test_a_batch_at_or_under_the_threshold_is_ready_at_once(start_malipo: StartMalipo) -> None:
    world = await threshold_world(start_malipo)
    for items in ([mobile(PAID, 1000)], [mobile(PAID, 500), mobile(PAID_TOO, 499)]):
        reply = await submit(world, items)
        assert reply.status_code == 201, reply.text
        assert (reply.json()["status"], reply.json()["approvalRequired"]) == ("Ready", False)
    # Rejected items do not count towards the total.
    reply = await submit(world, [mobile(PAID, 1000), mobile("12345", 5000)])
    assert (reply.json()["status"], reply.json()["rejectedCount"]) == ("Ready", 1)

    ready = reply.json()["batchId"]
    checker = await second_api_user(world, "checker")
    refused = await approve(world, ready, checker.headers)
    assert refused.status_code == 409, refused.text
    assert refused.json()["code"] == "not_awaiting_approval"
    assert (await batch(world, ready))["approvedBy"] is None
    assert (await process(world, ready)).status_code == 200
    await settled(world, ready)
    # Nor is a batch being processed (or done) approved.
    refused = await approve(world, ready, checker.headers)
    assert refused.status_code == 409, refused.text
    assert refused.json()["code"] == "not_awaiting_approval"
    await world.verify_ledger()


async def threshold(world: World, who: Portal, client_id: object, value: int | None) -> Any:
    return await call(world, "PUT", f"{SETTINGS}/{client_id}", who, json={"approvalThreshold": value})


async def test_a_client_sets_its_own_threshold_over_the_gateways(start_malipo: StartMalipo) -> None:
    world = await threshold_world(start_malipo)
    admin = await portal_user(world, "ClientAdmin", world.a.client_id)
    a_settings = f"{SETTINGS}/{world.a.client_id}"
    shown = await call(world, "GET", a_settings, admin)
    assert shown.status_code == 200, shown.text
    assert (shown.json()["approvalThreshold"], shown.json()["source"]) == (1000, "default")

    reply = await threshold(world, admin, world.a.client_id, 50)
    assert reply.status_code == 200, reply.text
    assert (reply.json()["approvalThreshold"], reply.json()["source"]) == (50, "client")
    shown = await call(world, "GET", a_settings, admin)
    assert (shown.json()["approvalThreshold"], shown.json()["source"]) == (50, "client")
    over = await submit(world, [mobile(PAID, 100)])
    assert (over.json()["status"], over.json()["approvalRequired"]) == ("AwaitingApproval", True)
    at = await submit(world, [mobile(PAID, 50)])
    assert at.json()["status"] == "Ready"
    # Merchant B still has the gateway's threshold.
    b_batch = await submit(world, [mobile(PAID, 100)], headers=world.b.headers)
    assert b_batch.json()["status"] == "Ready"

    reply = await threshold(world, admin, world.a.client_id, None)
    assert reply.status_code == 200, reply.text
    assert (reply.json()["approvalThreshold"], reply.json()["source"]) == (None, "client")
    large = await submit(world, [mobile(PAID, 5000)])
    assert (large.json()["status"], large.json()["approvalRequired"]) == ("Ready", False)
    # A batch already waiting keeps waiting: the threshold is read when a batch is submitted.
    assert (await batch(world, over.json()["batchId"]))["status"] == "AwaitingApproval"

    for refused in (
        await threshold(world, admin, world.b.client_id, 10),
        await call(world, "GET", f"{SETTINGS}/{world.b.client_id}", admin),
    ):
        assert refused.status_code == 404, refused.text
    operator = await portal_user(world, "SuperAdmin")
    b_settings = await call(world, "GET", f"{SETTINGS}/{world.b.client_id}", operator)
    assert b_settings.status_code == 200, b_settings.text
    assert (b_settings.json()["approvalThreshold"], b_settings.json()["source"]) == (1000, "default")
    by_operator = await threshold(world, operator, world.b.client_id, 20)
    assert by_operator.status_code == 200, by_operator.text
    assert (by_operator.json()["approvalThreshold"], by_operator.json()["source"]) == (20, "client")
    b_over = await submit(world, [mobile(PAID, 100)], headers=world.b.headers)
    assert b_over.json()["status"] == "AwaitingApproval"
    # A's own setting is untouched by B's.
    assert (await call(world, "GET", a_settings, admin)).json()["approvalThreshold"] is None

    for bad in ({"approvalThreshold": -1}, {"approvalThreshold": 1.5}, {}):
        reply = await call(world, "PUT", a_settings, admin, json=bad)
        assert reply.status_code == 422, (bad, reply.text)
    assert (await call(world, "GET", a_settings, admin)).json()["approvalThreshold"] is None
