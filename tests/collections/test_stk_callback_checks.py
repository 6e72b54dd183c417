"""Daraja STK callbacks checked against what malipo asked (issue 12, items 2 to 4): forged ids are
refused, another amount or payer is held for an operator's review, malformed and oversized
callbacks are refused and the STK query still settles the collection."""

from __future__ import annotations

import asyncio
import hashlib
import json
from typing import Any

import structlog

from malipo.collections.service import RECONCILE_JOB
from malipo.reviews.records import same_party
from tests.collections.test_stk_collections import success_callback
from tests.fixtures.world import (
    CALLBACK_LOST,
    NO_CALLBACK,
    SERVICE_FUNDS,
    Mailbox,
    StartMalipo,
    World,
    eventually,
)
from tests.reviews.helpers import portal_user, resolve, review_list, reviews, run_jobs_now

FEE_800 = 12_00  # what a KES 800 collection holds on the service wallet with the default fees


async def _sent(world: World, reference: str) -> Any:
    """The STK push of ``reference`` once malipo has stored Daraja's ids."""

    async def pushed() -> Any:
        push = world.sim.push_for(reference)
        collection = await world.collection(reference)
        return push if push is not None and collection.provider_checkout_request_id else None

    return await eventually(pushed, "the STK push and Daraja's ids")


def _with(body: dict[str, Any], **items: Any) -> dict[str, Any]:
    """``body`` with these CallbackMetadata items replaced."""
    for item in body["Body"]["stkCallback"]["CallbackMetadata"]["Item"]:
        if item["Name"] in items:
            item["Value"] = items[item["Name"]]
    return body


async def _unchanged(world: World, reference: str, balances: Any, journals: int) -> None:
    collection = await world.collection(reference)
    assert (collection.status, collection.mpesa_receipt, collection.journal_id) == ("SENT", None, None)
    assert await world.balances() == balances
    assert len(await world.journals()) == journals
    assert await world.deliveries(reference) == []
    await world.verify_ledger()


async def test_a_callback_with_another_requests_ids_is_refused_and_changes_nothing(
    world: World, mailbox: Mailbox
) -> None:
    reference = await world.queued(800, NO_CALLBACK, mailbox)
    push = await _sent(world, reference)
    balances, journals = await world.balances(), len(await world.journals())
    other = await _sent(world, await world.queued(800, NO_CALLBACK))  # a real push, not this one's
    forged = [
        success_callback(push.merchant_request_id, other.checkout_request_id, 800),
        success_callback(other.merchant_request_id, push.checkout_request_id, 800),
        success_callback("29115-34620561-1", "ws_CO_191220191020363925", 800),
    ]
    with structlog.testing.capture_logs() as events:
        for body in forged:
            reply = await world.http.post(push.callback_url, json=body)
            assert reply.status_code == 409, reply.text
            assert reply.json()["code"] == "callback_mismatch"
    refused = [e for e in events if e["event"] == "callback.mismatch"]
    assert [e["reference"] for e in refused] == [reference] * 3
    assert all(e["log_level"] == "warning" for e in refused)
    balances = balances.__class__(**{**balances.__dict__, "service": (SERVICE_FUNDS, 2 * FEE_800)})
    await _unchanged(world, reference, balances, journals)
    assert await reviews(world) == []

    # The real callback still settles it.
    ok = await world.http.post(
        push.callback_url, json=success_callback(push.merchant_request_id, push.checkout_request_id, 800)
    )
    assert ok.status_code == 200, ok.text
    assert (await world.collection(reference)).status == "SUCCESS"
    await world.verify_ledger()


async def test_another_amount_is_held_for_review_then_accepted_at_the_amount_received(
    world: World, mailbox: Mailbox
) -> None:
    reference = await world.queued(50, NO_CALLBACK, mailbox)
    push = await _sent(world, reference)
    before, journals = await world.balances(), len(await world.journals())

    body = success_callback(push.merchant_request_id, push.checkout_request_id, 1)  # KES 1 for KES 50
    reply = await world.http.post(push.callback_url, json=body)
    assert reply.status_code == 200, reply.text

    collection = await world.collection(reference)
    assert (collection.status, collection.amount, collection.journal_id) == ("REVIEW", 50_00, None)
    status = (await world.status(reference)).json()
    assert (status["status"], status["success"]) == ("QUEUED", False), "not final to the merchant"
    assert await world.balances() == before, "nothing credited, the fee still held"
    assert len(await world.journals()) == journals
    assert await world.deliveries(reference) == []
    # A repeat, a late failure and the STK query change nothing while it is held.
    assert (await world.http.post(push.callback_url, json=body)).status_code == 200
    assert (await world.collection(reference)).status == "REVIEW"

    operator = await portal_user(world, "CompanyAdmin")
    listed = await review_list(world, operator)
    assert listed.status_code == 200, listed.text
    [item] = [i for i in listed.json()["items"] if i["reference"] == reference]
    assert item["kind"] == "collection"
    assert (item["askedAmount"], item["receivedAmount"], item["currency"]) == ("50.00", "1.00", "KES")
    assert (item["askedParty"], item["receivedParty"]) == (NO_CALLBACK, NO_CALLBACK)
    assert item["reason"] == "the amount differs"
    assert item["receipt"] == "TST1234567"

    accepted = await resolve(world, operator, "collection", collection.id, "accept")
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["status"] == "ACCEPTED"
    collection = await world.collection(reference)
    assert (collection.status, collection.amount) == ("SUCCESS", 1_00)
    after = await world.balances()
    assert after.payments == (before.payments[0] + 1_00, 0), "credited with what was received"
    assert after.clearing == before.clearing - 1_00
    assert collection.fee > 0
    assert after.service == (before.service[0] - collection.fee, 0), "the fee taken from its hold"
    [journal] = await world.journals(kind="collection")
    assert journal.id == collection.journal_id
    [callback] = await mailbox.wait_for(1)
    assert callback["status"] is True
    assert callback["response"]["Amount"] == 1
    await world.verify_ledger()

    # Resolving again changes nothing.
    for action in ("accept", "reject"):
        again = await resolve(world, operator, "collection", collection.id, action)
        assert again.status_code == 409, again.text
        assert again.headers["content-type"].startswith("application/problem+json")
    assert await world.balances() == after
    assert len(await world.deliveries(reference)) == 1
    assert (await review_list(world, operator)).json()["items"] == []
    [done] = (await review_list(world, operator, "ACCEPTED")).json()["items"]
    assert done["resolvedBy"] is not None


async def test_another_payer_is_held_for_review_and_rejecting_it_credits_nothing(
    world: World, mailbox: Mailbox
) -> None:
    reference = await world.queued(300, NO_CALLBACK, mailbox)
    push = await _sent(world, reference)
    before = await world.balances()
    body = _with(
        success_callback(push.merchant_request_id, push.checkout_request_id, 300), PhoneNumber=254722000000
    )
    assert (await world.http.post(push.callback_url, json=body)).status_code == 200
    collection = await world.collection(reference)
    assert collection.status == "REVIEW"
    [review] = await reviews(world)
    assert (review.asked_party, review.received_party, review.reason) == (
        NO_CALLBACK, "254722000000", "the party differs",
    )  # fmt: skip

    operator = await portal_user(world, "CompanyAdmin")
    rejected = await resolve(world, operator, "collection", collection.id, "reject")
    assert rejected.status_code == 200, rejected.text
    collection = await world.collection(reference)
    assert (collection.status, collection.journal_id) == ("FAILED", None)
    after = await world.balances()
    assert after.payments == before.payments
    assert collection.fee > 0
    assert after.service == (before.service[0], before.service[1] - collection.fee), "the fee hold released"
    assert after.fee_revenue == before.fee_revenue
    [callback] = await mailbox.wait_for(1)
    assert callback["status"] is False
    assert (await resolve(world, operator, "collection", collection.id, "accept")).status_code == 409
    assert await world.balances() == after
    await world.verify_ledger()


async def test_only_operators_see_and_resolve_reviews(world: World, mailbox: Mailbox) -> None:
    reference = await world.queued(50, NO_CALLBACK, mailbox)
    push = await _sent(world, reference)
    body = success_callback(push.merchant_request_id, push.checkout_request_id, 2)
    assert (await world.http.post(push.callback_url, json=body)).status_code == 200
    collection = await world.collection(reference)
    before = await world.balances()

    merchant_admin = await portal_user(world, "ClientAdmin", world.a.client_id)
    for who in (world.a.headers, world.a.basic, merchant_admin):
        assert (await review_list(world, who)).status_code in (401, 403)
        for action in ("accept", "reject"):
            reply = await resolve(world, who, "collection", collection.id, action)
            assert reply.status_code in (401, 403), reply.text
    assert (await review_list(world, {})).status_code == 401
    assert (await world.collection(reference)).status == "REVIEW"
    assert await world.balances() == before
    assert await world.deliveries(reference) == []

    operator = await portal_user(world, "CompanyAdmin")
    assert (await resolve(world, operator, "payout", collection.id, "accept")).status_code == 404
    assert (await resolve(world, operator, "refund", collection.id, "accept")).status_code == 422
    assert (await world.collection(reference)).status == "REVIEW"


# -- malformed callbacks ------------------------------------------------------------------------


async def test_malformed_oversized_and_non_json_callbacks_are_refused_and_the_query_settles_it(
    world: World, mailbox: Mailbox
) -> None:
    reference = await world.queued(100, CALLBACK_LOST, mailbox)  # paid; only the STK query tells
    push = await _sent(world, reference)
    before, journals = await world.balances(), len(await world.journals())
    good = success_callback(push.merchant_request_id, push.checkout_request_id, 100)

    def coded(code: Any) -> dict[str, Any]:
        body = success_callback(push.merchant_request_id, push.checkout_request_id, 100)
        body["Body"]["stkCallback"]["ResultCode"] = code
        return body

    malformed = [
        coded(2**63), coded(-(2**70)), coded(2**64), coded(2**31), coded("0"), coded(0.5), coded(True),
        coded(None),
        _with(success_callback(push.merchant_request_id, push.checkout_request_id, 100),
              MpesaReceiptNumber="R" * 20_000),
        _with(success_callback(push.merchant_request_id, push.checkout_request_id, 100), Amount=2**70),
        _with(success_callback(push.merchant_request_id, push.checkout_request_id, 100), Amount=1.005),
        _with(success_callback(push.merchant_request_id, push.checkout_request_id, 100), PhoneNumber=2**80),
        success_callback("M" * 61, push.checkout_request_id, 100),
    ]  # fmt: skip
    for body in malformed:
        reply = await world.http.post(push.callback_url, json=body)
        assert reply.status_code == 422, (body, reply.text)
        assert reply.json()["errors"], "the fields are named"
    reply = await world.http.post(push.callback_url, json=coded(2**63))
    assert [e["field"] for e in reply.json()["errors"]] == ["Body.stkCallback.ResultCode"]
    for content_type in ("text/plain", "application/x-www-form-urlencoded", ""):
        reply = await world.http.post(
            push.callback_url, content=json.dumps(good), headers={"Content-Type": content_type}
        )
        assert reply.status_code == 415, reply.text
    await _unchanged(world, reference, before, journals)

    assert await run_jobs_now(world, RECONCILE_JOB) == 1
    assert (await world.final_status(reference))["status"] == "SUCCESS"
    collection = await world.collection(reference)
    assert collection.mpesa_receipt is None, "the oversized receipt was never stored"
    assert (await world.balances()).payments == (before.payments[0] + 100_00, 0)
    await world.verify_ledger()


async def test_a_non_json_or_malformed_callback_to_an_unknown_address_is_refused_as_unknown(
    start_malipo: StartMalipo,
) -> None:
    world = await start_malipo()
    reply = await world.http.post(
        "/callbacks/daraja/" + "x" * 43, content="{}", headers={"Content-Type": "text/plain"}
    )
    assert reply.status_code == 404


def test_a_masked_or_hashed_payer_is_compared_where_daraja_shows_it() -> None:
    asked = "254708374149"
    assert same_party(asked, "254708374149")
    assert same_party(asked, "2547 ***** 149")  # Daraja's masked MSISDN
    assert same_party(asked, "0708374149")  # written the Kenyan way
    assert same_party(asked, "+254708374149")
    assert same_party(asked, hashlib.sha256(asked.encode()).hexdigest())  # and its hashed one
    assert same_party(asked, None), "a party Daraja does not name is not compared"
    assert not same_party(asked, "254722000000")
    assert not same_party(asked, "2547 ***** 148")
    assert not same_party(asked, hashlib.sha256(b"254722000000").hexdigest())
    assert not same_party(asked, "25470837414")
    assert not same_party(asked, "0722000000")


async def test_a_review_is_resolved_once_under_concurrent_operators_and_needs_the_permission(
    world: World, mailbox: Mailbox
) -> None:
    reference = await world.queued(60, NO_CALLBACK, mailbox)
    push = await _sent(world, reference)
    body = success_callback(push.merchant_request_id, push.checkout_request_id, 59)
    assert (await world.http.post(push.callback_url, json=body)).status_code == 200
    collection = await world.collection(reference)
    before = await world.balances()

    # An operator whose role only reads (ReadOnly) sees the list but resolves nothing.
    reader = await portal_user(world, "ReadOnly")
    assert (await review_list(world, reader)).status_code == 200
    for action in ("accept", "reject"):
        reply = await resolve(world, reader, "collection", collection.id, action)
        assert reply.status_code == 403, reply.text
        assert f"Review.{action.title()}" in reply.text
    assert (await world.collection(reference)).status == "REVIEW"

    operators = [await portal_user(world, "CompanyAdmin") for _ in range(2)]
    replies = await asyncio.gather(
        resolve(world, operators[0], "collection", collection.id, "accept"),
        resolve(world, operators[1], "collection", collection.id, "accept"),
        resolve(world, operators[0], "collection", collection.id, "reject"),
    )
    assert sorted(r.status_code for r in replies) == [200, 409, 409], [r.text for r in replies]
    final = await world.collection(reference)
    won = next(r for r in replies if r.status_code == 200).json()["status"]
    assert final.status == ("SUCCESS" if won == "ACCEPTED" else "FAILED")
    after = await world.balances()
    credited = 59_00 if final.status == "SUCCESS" else 0
    assert after.payments == (before.payments[0] + credited, 0)
    assert len(await world.journals(kind="collection")) == (1 if credited else 0)
    assert len(await world.deliveries(reference)) == 1
    await world.verify_ledger()
