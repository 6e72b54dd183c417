"""M-Pesa collections end to end: Pay Hero's API in, the Daraja simulator, the books, the
merchant's callback out, all over real HTTP (issue #5, "Tests that must exist")."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import structlog

from malipo.collections.models import PaymentChannel
from malipo.core import crypto
from malipo.ledger.models import Hold, Journal
from malipo.webhooks.models import WebhookDelivery
from tests.fixtures.world import (
    CALLBACK_LOST,
    CANCELLED,
    INSUFFICIENT,
    NO_CALLBACK,
    PAYS,
    SERVICE_FUNDS,
    UNREACHABLE,
    WRONG_PIN,
    CallbackReceiver,
    Mailbox,
    StartMalipo,
    World,
    eventually,
)

REFERENCE = re.compile(r"[A-Z0-9]{10}")
CHECKOUT = re.compile(r"ws_CO_\d{26}")
RECEIPT = re.compile(r"[A-Z][A-Z0-9]{9}")


def stk_callback(push_body: dict[str, Any], result_code: int, desc: str) -> dict[str, Any]:
    """A Daraja callback for the same push with another outcome (no metadata: a failure)."""
    callback = dict(push_body["Body"]["stkCallback"])
    callback.pop("CallbackMetadata", None)
    callback |= {"ResultCode": result_code, "ResultDesc": desc}
    return {"Body": {"stkCallback": callback}}


def success_callback(merchant_request_id: str, checkout_request_id: str, amount: int) -> dict[str, Any]:
    return {
        "Body": {
            "stkCallback": {
                "MerchantRequestID": merchant_request_id,
                "CheckoutRequestID": checkout_request_id,
                "ResultCode": 0,
                "ResultDesc": "The service request is processed successfully.",
                "CallbackMetadata": {
                    "Item": [
                        {"Name": "Amount", "Value": amount},
                        {"Name": "MpesaReceiptNumber", "Value": "TST1234567"},
                        {"Name": "Balance"},
                        {"Name": "TransactionDate", "Value": 20260101120000},
                        {"Name": "PhoneNumber", "Value": 254700000005},
                    ]
                },
            }
        }
    }


# -- 1. success ------------------------------------------------------------------------------


async def test_successful_collection_reaches_the_wallet_and_the_merchant(
    world: World, mailbox: Mailbox
) -> None:
    before = await world.balances()
    assert before.service == (SERVICE_FUNDS, 0)

    reply = await world.pay(
        1000, "0711 222 333", external_reference="INV-009", customer_name="Wanjiru", callback_url=mailbox.url
    )
    assert reply.status_code == 201, reply.text
    queued = reply.json()
    assert queued["success"] is True
    assert queued["status"] == "QUEUED"
    assert REFERENCE.fullmatch(queued["reference"])
    assert CHECKOUT.fullmatch(queued["CheckoutRequestID"])
    reference = queued["reference"]

    [callback] = await mailbox.wait_for(1)
    assert callback["status"] is True
    assert callback["forward_url"] == ""
    response = callback["response"]
    assert response["Status"] == "Success"
    assert response["ResultCode"] == 0
    assert RECEIPT.fullmatch(response["MpesaReceiptNumber"])
    assert response["ExternalReference"] == "INV-009"
    assert response["Amount"] == 1000
    assert response["CheckoutRequestID"] == queued["CheckoutRequestID"]
    assert response["Phone"] == "+254711222333"
    assert response["MerchantRequestID"]

    status = (await world.status(reference)).json()
    assert status["status"] == "SUCCESS"
    assert status["success"] is True
    assert status["reference"] == reference
    assert status["provider_reference"] == response["MpesaReceiptNumber"]
    by_checkout = await world.status(queued["CheckoutRequestID"])
    assert by_checkout.json()["reference"] == reference

    fee = 15_00  # 1.5 % of KES 1,000
    after = await world.balances()
    assert after.payments[0] - before.payments[0] == 1000_00
    assert after.service == (SERVICE_FUNDS - fee, 0)
    assert after.fee_revenue - before.fee_revenue == fee
    assert after.clearing - before.clearing == -1000_00

    wallets = world.http
    service = (await wallets.get("/api/v2/wallets", headers=world.a.headers)).json()
    assert (service["wallet_type"], service["available_balance"]) == ("service_wallet", 485)
    payments = (
        await wallets.get(
            "/api/v2/wallets", params={"wallet_type": "payment_wallet"}, headers=world.a.headers
        )
    ).json()
    assert payments["available_balance"] == 1000

    collection = await world.collection(reference)
    assert collection.journal_id is not None
    assert collection.mpesa_receipt == response["MpesaReceiptNumber"]
    assert [d.status for d in await world.delivered(reference)] == ["delivered"]
    listed = (await world.http.get("/api/v2/transactions", headers=world.a.headers)).json()
    assert [
        (t["transaction_reference"], t["status"], t["amount"], t["cost"]) for t in listed["transactions"]
    ] == [(reference, "SUCCESS", 1000, 15)]
    await world.verify_ledger()


async def test_collection_to_own_paybill_is_booked_as_settled_there(world: World, mailbox: Mailbox) -> None:
    created = await world.http.post(
        "/api/v2/payment_channels",
        json={
            "channel_type": "paybill",
            "short_code": 522522,
            "account_number": "1280006242",
            "description": "KCB",
        },
        headers=world.a.headers,
    )
    assert created.status_code == 201, created.text
    channel = created.json()
    assert (channel["transaction_type"], channel["short_code"], channel["balance_plain"]) == (
        "CustomerPayBillOnline",
        "522522",
        None,
    )
    before = await world.balances()
    reference = await world.queued(200, PAYS, mailbox, channel_id=channel["id"])
    assert (await world.final_status(reference))["status"] == "SUCCESS"
    after = await world.balances()
    assert after.payments == before.payments, "money paid to the merchant's own paybill is not in malipo"
    assert after.external - before.external == 200_00
    assert after.service == (SERVICE_FUNDS - 3_00, 0)
    [callback] = await mailbox.wait_for(1)
    assert callback["status"] is True
    await world.verify_ledger()


async def test_top_up_fills_the_service_wallet_without_a_fee(world: World) -> None:
    reply = await world.http.post(
        "/api/v2/topup", json={"amount": 250, "phone_number": "254711222333"}, headers=world.b.headers
    )
    assert reply.status_code == 201, reply.text
    assert reply.json()["status"] == "QUEUED"
    reference = reply.json()["reference"]
    assert (await world.final_status(reference, world.b))["status"] == "SUCCESS"
    after = await world.balances(world.b)
    assert after.service == (250_00, 0)
    assert after.payments == (0, 0)
    assert await world.holds(reference) == []
    await world.verify_ledger()


async def test_pay_hero_basic_credentials_collect_in_live_mode(world: World, mailbox: Mailbox) -> None:
    body = {"amount": 100, "phone_number": "+254711222333", "provider": "m-pesa", "callback_url": mailbox.url}
    reply = await world.http.post("/api/v2/payments", json=body, headers=world.a.basic)
    assert reply.status_code == 201, reply.text
    reference = reply.json()["reference"]
    [callback] = await mailbox.wait_for(1)
    assert callback["status"] is True
    status = await world.http.get(
        "/api/v2/transaction-status", params={"reference": reference}, headers=world.a.basic
    )
    assert status.json()["status"] == "SUCCESS"
    assert (await world.status(reference)).status_code == 404, "a live collection is not the sandbox's"
    live = await world.balances(mode="live")
    assert live.payments == (100_00, 0)
    assert live.service == (SERVICE_FUNDS - 1_50, 0)
    await world.verify_ledger()


# -- 2. failures -----------------------------------------------------------------------------

FAILURES = {
    CANCELLED: (1032, "Request cancelled by user"),
    UNREACHABLE: (1037, "DS timeout user cannot be reached"),
    INSUFFICIENT: (1, "The balance is insufficient for the transaction."),
    WRONG_PIN: (2001, "The initiator information is invalid."),
}


async def test_each_failure_code_fails_releases_the_fee_and_tells_the_merchant(
    world: World, mailbox: Mailbox
) -> None:
    before = await world.balances()
    journals = len(await world.journals())
    references = {
        phone: await world.queued(300, phone, mailbox, external_reference=f"FAIL-{code}")
        for phone, (code, _desc) in FAILURES.items()
    }
    callbacks = await mailbox.wait_for(len(FAILURES))
    assert len(callbacks) == len(FAILURES)

    for phone, (code, desc) in FAILURES.items():
        reference = references[phone]
        status = (await world.status(reference)).json()
        assert (status["status"], status["success"], status["result_code"]) == ("FAILED", False, code)
        collection = await world.collection(reference)
        assert (collection.result_code, collection.result_desc) == (code, desc)
        assert collection.journal_id is None
        [callback] = [c for c in callbacks if c["response"]["ExternalReference"] == f"FAIL-{code}"]
        assert callback["status"] is False
        assert callback["response"]["Status"] == "Failed"
        assert callback["response"]["ResultCode"] == code
        assert callback["response"]["ResultDesc"] == desc
        assert callback["response"]["MpesaReceiptNumber"] == ""
        [hold] = await world.holds(reference)
        assert (hold.status, hold.amount) == ("released", 4_50)

    after = await world.balances()
    assert after.service == before.service == (SERVICE_FUNDS, 0), "every fee hold was released"
    assert after.payments == before.payments
    assert after.fee_revenue == before.fee_revenue
    assert len(await world.journals()) == journals, "a failed collection posts no journal"
    await world.verify_ledger()


# -- 3. duplicate and out-of-order Daraja callbacks --------------------------------------------


async def test_repeated_and_late_daraja_callbacks_change_nothing(world: World, mailbox: Mailbox) -> None:
    paid = await world.queued(500, PAYS, mailbox)
    failed = await world.queued(500, CANCELLED, mailbox)
    await mailbox.wait_for(2)
    await world.delivered(paid)
    await world.delivered(failed)
    balances = await world.balances()
    journals = len(await world.journals())

    for reference in (paid, failed):
        push = world.sim.push_for(reference)
        assert push is not None
        [original] = world.sim.callbacks_to(push.callback_url)
        assert push.callback_url.startswith(f"{world.url}/callbacks/daraja/")
        resent = [
            original,  # the same callback again
            stk_callback(original, 1032, "Request cancelled by user"),  # a failure after a success
            stk_callback(original, 1, "The balance is insufficient for the transaction."),
        ]
        if reference == failed:  # a success after the failure
            resent.append(success_callback(push.merchant_request_id, push.checkout_request_id, 500))
        for body in resent:
            reply = await world.http.post(push.callback_url, json=body)
            assert reply.status_code == 200, reply.text
            assert reply.json() == {"ResultCode": 0, "ResultDesc": "Accepted"}
        # The same callback many times at once: still one transition.
        replies = await asyncio.gather(*(world.http.post(push.callback_url, json=original) for _ in range(5)))
        assert [r.status_code for r in replies] == [200] * 5

    assert (await world.status(paid)).json()["status"] == "SUCCESS"
    assert (await world.collection(paid)).mpesa_receipt is not None
    late = await world.collection(failed)
    assert (late.status, late.result_code, late.mpesa_receipt, late.journal_id) == (
        "FAILED",
        1032,
        None,
        None,
    )
    assert await world.balances() == balances
    assert len(await world.journals()) == journals
    for reference in (paid, failed):
        assert len(await world.deliveries(reference)) == 1, "the merchant is told once per state"
    assert mailbox.hits == 2
    await world.verify_ledger()


async def test_concurrent_callbacks_for_an_open_collection_settle_it_once(
    world: World, mailbox: Mailbox
) -> None:
    reference = await world.queued(700, NO_CALLBACK, mailbox)

    async def pushed() -> Any:
        push = world.sim.push_for(reference)
        collection = await world.collection(reference)
        return push if push is not None and collection.provider_checkout_request_id else None

    push = await eventually(pushed, "the STK push")
    body = success_callback(push.merchant_request_id, push.checkout_request_id, 700)
    failure = stk_callback(body, 1032, "Request cancelled by user")
    replies = await asyncio.gather(
        *(world.http.post(push.callback_url, json=body if n % 2 == 0 else failure) for n in range(8))
    )
    assert {r.status_code for r in replies} == {200}

    collection = await world.collection(reference)
    assert collection.status in ("SUCCESS", "FAILED")
    [callback] = await mailbox.wait_for(1)
    assert callback["status"] is (collection.status == "SUCCESS")
    assert len(await world.deliveries(reference)) == 1
    journals = await world.journals(kind="collection")
    assert len(journals) == (1 if collection.status == "SUCCESS" else 0)
    [hold] = await world.holds(reference)
    assert hold.status == ("settled" if collection.status == "SUCCESS" else "released")
    await world.verify_ledger()


# -- 4. forged callbacks ---------------------------------------------------------------------


async def test_a_callback_with_an_unknown_token_is_refused_and_changes_nothing(
    world: World, mailbox: Mailbox
) -> None:
    reference = await world.queued(800, NO_CALLBACK, mailbox)

    async def pushed() -> Any:
        push = world.sim.push_for(reference)
        collection = await world.collection(reference)
        return push if push is not None and collection.provider_checkout_request_id else None

    push = await eventually(pushed, "the STK push")
    body = success_callback(push.merchant_request_id, push.checkout_request_id, 800)
    real_token = push.callback_url.rsplit("/", 1)[1]
    forged = ("forged", real_token[:-1] + ("A" if real_token[-1] != "A" else "B"), "x" * 43)
    with structlog.testing.capture_logs() as events:
        for token in forged:
            reply = await world.http.post(f"/callbacks/daraja/{token}", json=body)
            assert reply.status_code == 404, reply.text
    refused = [e for e in events if e["event"] == "callback.unknown_token"]
    assert len(refused) == len(forged)
    assert all(e["log_level"] == "warning" for e in refused)
    assert (await world.http.post("/callbacks/daraja/", json=body)).status_code in (404, 405)

    collection = await world.collection(reference)
    assert (collection.status, collection.mpesa_receipt) == ("SENT", None)
    assert (await world.status(reference)).json()["status"] == "QUEUED"
    assert await world.journals(kind="collection") == []
    assert await world.deliveries(reference) == []
    assert (await world.balances()).service == (SERVICE_FUNDS, 12_00)  # the fee is still held
    await world.verify_ledger()


# -- 5. the merchant's endpoint fails, then recovers -------------------------------------------


async def test_merchant_callback_is_retried_until_it_lands_or_the_attempts_run_out(
    start_malipo: StartMalipo, mailbox: Mailbox, receiver: CallbackReceiver
) -> None:
    world = await start_malipo(webhook_max_attempts=3)
    mailbox.fail_first(2)
    down = Mailbox(receiver)
    down.fail_first(100)
    reference = await world.queued(100, PAYS, mailbox)
    lost = await world.queued(100, PAYS, down)

    [delivery] = await world.delivered(reference)
    [callback] = await mailbox.wait_for(1)
    assert callback["response"]["Status"] == "Success"
    assert mailbox.hits == 3
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("delivered", 3, 200)
    assert delivery.delivered_at is not None
    attempts = await world.attempts(delivery.id)
    assert [(a.number, a.status_code) for a in attempts] == [(1, 500), (2, 500), (3, 200)]
    assert [a.error is None for a in attempts] == [False, False, True]
    assert "HTTP 500" in (attempts[0].error or "")

    async def given_up() -> WebhookDelivery | None:
        found = await world.deliveries(lost)
        return found[0] if found and found[0].status == "failed" else None

    failed = await eventually(given_up, "the undeliverable callback to be given up")
    assert (failed.attempts, failed.last_status_code, failed.delivered_at) == (3, 500, None)
    assert [a.number for a in await world.attempts(failed.id)] == [1, 2, 3]
    assert down.hits == 3
    pending = [j for j in await world.jobs("webhook.deliver") if j.status == "pending"]
    assert pending == [], "nothing is left to try"
    await world.verify_ledger()


# -- 6. no callback at all: the STK query settles it ------------------------------------------


async def test_stk_query_settles_collections_whose_callback_never_comes(
    start_malipo: StartMalipo, mailbox: Mailbox
) -> None:
    world = await start_malipo(stk_query_after_seconds=0.2)
    unanswered = await world.queued(100, NO_CALLBACK, mailbox, external_reference="UNANSWERED")
    lost = await world.queued(100, CALLBACK_LOST, mailbox, external_reference="LOST")

    assert (await world.final_status(unanswered))["status"] == "FAILED"
    assert (await world.final_status(lost))["status"] == "SUCCESS"
    collection = await world.collection(unanswered)
    assert collection.result_code == 1037
    callbacks = await mailbox.wait_for(2)
    by_reference = {c["response"]["ExternalReference"]: c for c in callbacks}
    assert by_reference["UNANSWERED"]["status"] is False
    assert by_reference["UNANSWERED"]["response"]["ResultCode"] == 1037
    assert by_reference["LOST"]["status"] is True
    for reference in (unanswered, lost):
        assert len(await world.deliveries(reference)) == 1
    balances = await world.balances()
    assert balances.payments == (100_00, 0)
    assert balances.service == (SERVICE_FUNDS - 1_50, 0)
    await world.verify_ledger()


# -- 8. the same external_reference twice ----------------------------------------------------


async def test_a_repeated_external_reference_answers_the_first_collection(
    world: World, mailbox: Mailbox
) -> None:
    first = await world.pay(100, PAYS, external_reference="ORDER-1", callback_url=mailbox.url)
    again = await world.pay(100, PAYS, external_reference="ORDER-1", callback_url=mailbox.url)
    assert first.status_code == again.status_code == 201
    assert again.json()["reference"] == first.json()["reference"]
    assert again.json()["CheckoutRequestID"] == first.json()["CheckoutRequestID"]
    # At once, too: one collection.
    racing = await asyncio.gather(*(world.pay(200, PAYS, external_reference="ORDER-2") for _ in range(6)))
    assert {r.status_code for r in racing} == {201}, [r.text for r in racing]
    assert len({r.json()["reference"] for r in racing}) == 1

    collections = await world.collections()
    assert sorted(c.external_reference or "" for c in collections) == ["ORDER-1", "ORDER-2"]
    for collection in collections:
        assert len(await world.holds(collection.reference)) == 1
    await mailbox.wait_for(1)
    await world.final_status(racing[0].json()["reference"])
    # Asked again once it succeeded: the same transaction, not a new charge.
    late = await world.pay(100, PAYS, external_reference="ORDER-1")
    assert (late.status_code, late.json()["reference"], late.json()["status"]) == (
        201,
        first.json()["reference"],
        "SUCCESS",
    )
    assert len(await world.collections()) == 2
    assert await world.count(Hold) == 2
    assert (await world.balances()).service == (SERVICE_FUNDS - 1_50 - 3_00, 0)
    assert mailbox.hits == 1
    await world.verify_ledger()


# -- 9. bad input ----------------------------------------------------------------------------


async def test_bad_payment_requests_are_refused_in_pay_heros_shape(world: World) -> None:
    other = await world.http.post(
        "/api/v2/payment_channels",
        json={"channel_type": "till", "short_code": "5123456", "description": "B's till"},
        headers=world.b.headers,
    )
    assert other.status_code == 201, other.text
    cases: list[tuple[dict[str, Any], int, str]] = [
        ({"phone_number": "0712"}, 400, "phone_number"),
        ({"phone_number": "07123456789999"}, 400, "phone_number"),
        ({"phone_number": "not a phone"}, 400, "phone_number"),
        ({"amount": 0}, 400, "amount"),
        ({"amount": -5}, 400, "amount"),
        ({"amount": 250_001}, 400, "amount"),
        ({"amount": "ten"}, 400, "amount"),
        ({"channel_id": 987654}, 404, "channel_id"),
        ({"channel_id": other.json()["id"]}, 404, "channel_id"),
        ({"network_code": "99999"}, 400, "network_code"),
        ({"callback_url": "ftp://example.com/x"}, 400, "callback_url"),
    ]
    for change, status, field in cases:
        body = {"amount": 100, "phone_number": "0711222333", "provider": "m-pesa"} | change
        reply = await world.http.post("/api/v2/payments", json=body, headers=world.a.headers)
        assert reply.status_code == status, (change, reply.text)
        error = reply.json()
        assert set(error) == {"error_code", "error_message", "status_code"}, error
        assert error["status_code"] == status
        assert error["error_code"] == ("invalid_argument" if status == 400 else "not_found")
        assert field in error["error_message"], (change, error)

    missing = await world.http.post("/api/v2/payments", json={"amount": 100}, headers=world.a.headers)
    assert missing.status_code == 400
    assert "phone_number" in missing.json()["error_message"]
    unauthenticated = await world.http.post("/api/v2/payments", json={"amount": 100, "phone_number": PAYS})
    assert unauthenticated.status_code == 401
    assert set(unauthenticated.json()) == {"error_code", "error_message", "status_code"}

    # B's service wallet is empty: the fee cannot be covered.
    broke = await world.pay(100, PAYS, merchant=world.b)
    assert broke.status_code == 400, broke.text
    assert broke.json()["error_code"] == "invalid_argument"
    assert "service wallet" in broke.json()["error_message"]

    assert await world.collections() == []
    assert await world.count(Hold) == 0
    assert await world.jobs("collection.send") == []
    await world.verify_ledger()


# -- 10. tenancy -----------------------------------------------------------------------------


async def test_merchants_see_only_their_own_transactions_and_channels(world: World, mailbox: Mailbox) -> None:
    channel = await world.http.post(
        "/api/v2/payment_channels",
        json={"channel_type": "till", "short_code": "5123456", "description": "A's till"},
        headers=world.a.headers,
    )
    assert channel.status_code == 201
    channel_id = channel.json()["id"]
    reply = await world.pay(100, PAYS, callback_url=mailbox.url)
    reference, checkout = reply.json()["reference"], reply.json()["CheckoutRequestID"]
    await world.final_status(reference)

    for asked in (reference, checkout):
        refused = await world.status(asked, merchant=world.b)
        assert refused.status_code == 404, refused.text
        assert refused.json()["error_code"] == "not_found"
    assert (
        await world.http.get(f"/api/v2/payment_channels/{channel_id}", headers=world.b.headers)
    ).status_code == 404
    b_channels = (await world.http.get("/api/v2/payment_channels", headers=world.b.headers)).json()
    assert channel_id not in [c["id"] for c in b_channels["payment_channels"]]
    assert all(c["account_id"] == str(world.b.client_id) for c in b_channels["payment_channels"])
    b_listed = (await world.http.get("/api/v2/transactions", headers=world.b.headers)).json()
    assert b_listed["transactions"] == []
    b_pays_to_a = await world.pay(100, PAYS, merchant=world.b, channel_id=channel_id)
    assert b_pays_to_a.status_code == 404

    a_channels = (await world.http.get("/api/v2/payment_channels", headers=world.a.headers)).json()
    assert channel_id in [c["id"] for c in a_channels["payment_channels"]]
    assert (
        await world.http.get(f"/api/v2/payment_channels/{channel_id}", headers=world.a.headers)
    ).status_code == 200
    assert await world.count(PaymentChannel) >= 2
    assert await world.count(Journal) >= 1
    await world.verify_ledger()


async def test_the_callback_token_never_reaches_the_logs(world: World, mailbox: Mailbox) -> None:
    """The token in the CallBackURL is the only proof a callback is Daraja's: not one log line shows it."""
    with structlog.testing.capture_logs() as events:
        reference = await world.queued(300, PAYS, mailbox)
        assert (await world.final_status(reference))["status"] == "SUCCESS"
        await mailbox.wait_for(1)
    push = world.sim.push_for(reference)
    assert push is not None
    token = push.callback_url.rsplit("/", 1)[1]
    assert any(e.get("route") == "/callbacks/daraja/{token}" for e in events), "the callback was logged"
    assert not [e for e in events if token in repr(e)]


async def test_the_callback_token_is_stored_nowhere_but_as_its_hash(world: World, mailbox: Mailbox) -> None:
    """Derived from the collection's id with the secret key: the jobs table holds no callback
    secret a reader of the database could use to forge Daraja's answer."""
    reference = await world.queued(300, PAYS, mailbox)
    assert (await world.final_status(reference))["status"] == "SUCCESS"
    push = world.sim.push_for(reference)
    assert push is not None
    token = push.callback_url.rsplit("/", 1)[1]
    collection = await world.collection(reference)
    assert collection.callback_token_hash == crypto.sha256_hex(token)
    jobs = await world.jobs("collection.send") + await world.jobs("collection.reconcile")
    assert jobs
    assert not [job for job in jobs if token in json.dumps(job.payload)]
    # Another collection gets another secret.
    other = await world.queued(301, PAYS)
    await world.final_status(other)
    other_push = world.sim.push_for(other)
    assert other_push is not None
    assert other_push.callback_url.rsplit("/", 1)[1] != token


async def test_a_cached_id_that_names_no_row_is_looked_up_again(world: World) -> None:
    """Cached wallet-channel and account ids are facts once committed; should one ever name a row
    that is not there (the long fuzz once left one behind), the foreign key refuses the insert and
    the request looks them up afresh instead of failing with a 500 for good."""
    wallet_channels = world.app.state.db.caches.setdefault("collections.wallet_channels", {})
    for mode in ("test", "live"):
        wallet_channels[(world.b.client_id, mode)] = 987_654_321
    reply = await world.http.post(
        "/api/v2/topup", json={"amount": 250, "phone_number": "254711222333"}, headers=world.b.headers
    )
    assert reply.status_code == 201, reply.text
    reference = reply.json()["reference"]
    assert (await world.final_status(reference, world.b))["status"] == "SUCCESS"
    assert (await world.collection(reference)).channel_id != 987_654_321
    assert (await world.balances(world.b)).service == (250_00, 0)
    await world.verify_ledger()
