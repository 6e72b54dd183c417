"""M-Pesa C2B end to end: registration with the Daraja simulator, its simulate (a payer paying a
paybill or till), malipo's validation and confirmation, the books and the merchant's callback,
all over real HTTP, on SQLite and PostgreSQL (issue #17, "M-Pesa C2B")."""

from __future__ import annotations

import httpx

from malipo.collections.c2b.models import C2bChannel, C2bPayment
from malipo.collections.models import Collection
from malipo.ledger.models import Journal
from malipo.providers.daraja.c2b import forbidden_word
from tests.c2b.helpers import (
    OPERATOR,
    OWN_PAYBILL,
    add_channel,
    c2b_payment,
    collection_of,
    count,
    register,
    simulate,
    wallet_channel,
)
from tests.fixtures.world import SERVICE_FUNDS, Mailbox, World, eventually


async def test_registration_goes_to_daraja_with_tokened_urls_free_of_forbidden_words(world: World) -> None:
    channel_id = await add_channel(world, "paybill", OWN_PAYBILL)
    found = await register(world, channel_id, rule="acceptAll", responseType="Cancelled")
    assert found["shortCode"] == OWN_PAYBILL
    assert found["responseType"] == "Cancelled"
    assert found["registrationReply"]["ResponseCode"] == "0"
    assert found["registeredAt"] is not None
    urls = world.sim.sim.c2b_urls[OWN_PAYBILL]
    assert urls.response_type == "Cancelled"
    assert urls.version == "v2"
    assert urls.validation_url.startswith(f"{world.url}/callbacks/daraja/c2b/")
    assert urls.validation_url.endswith("/validation")
    assert urls.confirmation_url.endswith("/confirmation")
    assert forbidden_word(urls.validation_url) is None
    assert forbidden_word(urls.confirmation_url) is None
    token = urls.confirmation_url.split("/")[-2]
    async with world.db.transaction() as session:
        stored = await session.get(C2bChannel, channel_id)
    assert stored is not None
    assert stored.token_hash is not None
    assert token not in stored.token_hash, "only the token's hash is stored"

    # Registering again is harmless: one registration row, the URLs the same.
    again = await register(world, channel_id, rule="requireKnownReference")
    assert again["rule"] == "requireKnownReference"
    assert await count(world, C2bChannel) == 1
    assert world.sim.sim.c2b_urls[OWN_PAYBILL].confirmation_url == urls.confirmation_url


async def test_simulator_refuses_forbidden_words_and_bad_response_types(world: World) -> None:
    from tests.c2b.helpers import sim_token

    headers = {"Authorization": f"Bearer {await sim_token(world)}"}
    body = {
        "ShortCode": "600111", "ResponseType": "Completed",
        "ConfirmationURL": "https://shop.example.com/mpesa/confirm", "ValidationURL": "https://shop.example.com/v",
    }  # fmt: skip
    async with httpx.AsyncClient(base_url=world.sim.url) as http:
        refused = await http.post("/mpesa/c2b/v2/registerurl", json=body, headers=headers)
        typo = await http.post(
            "/mpesa/c2b/v1/registerurl", json=body | {"ConfirmationURL": "https://a.example/c",
                                                       "ResponseType": "Canceled"}, headers=headers,
        )  # fmt: skip
    assert refused.status_code == 400
    assert refused.json()["errorMessage"] == "Bad Request - Invalid ConfirmationURL"
    assert typo.status_code == 400
    assert typo.json()["errorMessage"] == "Bad Request - Invalid ResponseType"
    assert "600111" not in world.sim.sim.c2b_urls


async def test_paybill_payment_is_recorded_settled_for_the_merchant(world: World, mailbox: Mailbox) -> None:
    channel_id = await add_channel(world, "paybill", OWN_PAYBILL)
    await register(world, channel_id, callbackUrl=mailbox.url)
    before = await world.balances()

    receipt = await simulate(world, OWN_PAYBILL, 500, "INV-1")
    assert receipt.validation == "accepted"
    assert receipt.confirmed

    collection = await collection_of(world, receipt.trans_id)
    assert (collection.status, collection.purpose, collection.amount) == ("SUCCESS", "c2b", 500_00)
    assert collection.channel_id == channel_id
    fee = 7_50  # 1.5 % of KES 500, from the service wallet as for an STK collection
    after = await world.balances()
    assert after.external - before.external == 500_00, "recorded as settled at the merchant's own paybill"
    assert after.payments == before.payments, "the money stays at the merchant's paybill"
    assert after.clearing - before.clearing == -500_00
    assert after.service == (SERVICE_FUNDS - fee, 0)
    assert after.fee_revenue - before.fee_revenue == fee
    await world.verify_ledger()

    [callback] = await mailbox.wait_for(1)
    assert callback["status"] is True
    assert callback["response"]["MpesaReceiptNumber"] == receipt.trans_id
    assert callback["response"]["Amount"] == 500
    assert callback["response"]["Status"] == "Success"

    listed = await world.http.get("/api/v2/transactions", headers=world.a.headers)
    assert listed.status_code == 200, listed.text
    assert collection.reference in listed.text
    status = (await world.status(collection.reference)).json()
    assert (status["status"], status["provider_reference"]) == ("SUCCESS", receipt.trans_id)


async def test_wallet_channel_payment_on_the_operator_shortcode_reaches_the_payments_wallet(
    world: World, mailbox: Mailbox
) -> None:
    wallet_id = await wallet_channel(world)
    found = await register(world, wallet_id, callbackUrl=mailbox.url)
    assert found["shortCode"] == OPERATOR
    assert found["accountNumberFormat"] == f"{wallet_id}#<reference>"
    before = await world.balances()

    receipt = await simulate(world, OPERATOR, 1000, f"{wallet_id}#ORDER-9")
    assert receipt.confirmed
    collection = await collection_of(world, receipt.trans_id)
    assert collection.client_id == world.a.client_id
    after = await world.balances()
    assert after.payments[0] - before.payments[0] == 1000_00
    assert after.fee_revenue - before.fee_revenue == 15_00
    assert after.service[0] == before.service[0] - 15_00
    await world.verify_ledger()
    [callback] = await mailbox.wait_for(1)
    assert callback["response"]["MpesaReceiptNumber"] == receipt.trans_id

    # A payment naming no channel is kept (suspense) for the operator, never lost.
    stray = await simulate(world, OPERATOR, 50, "no-channel-here")
    assert stray.validation == "C2B00015", "validation refuses it first"
    assert stray.completed is False


async def test_a_repeated_confirmation_changes_nothing(world: World) -> None:
    channel_id = await add_channel(world, "till", "5123456")
    await register(world, channel_id)
    receipt = await simulate(world, "5123456", 300, till=True)
    journals = await count(world, Journal)
    url = world.sim.sim.c2b_urls["5123456"].confirmation_url
    async with httpx.AsyncClient() as http:
        again = await http.post(url, json=receipt.body)
        twice = await http.post(url, json=receipt.body)
    assert again.status_code == twice.status_code == 200
    assert again.json() == {"ResultCode": 0, "ResultDesc": "Success"}
    assert await count(world, C2bPayment, C2bPayment.trans_id == receipt.trans_id) == 1
    assert await count(world, Collection, Collection.mpesa_receipt == receipt.trans_id) == 1
    assert await count(world, Journal) == journals
    payment = await c2b_payment(world, receipt.trans_id)
    assert payment.msisdn == "2547 ***** 149", "v2 masks the MSISDN"
    assert payment.amount == 300_00
    await world.verify_ledger()


async def test_validation_rejects_with_the_right_codes(world: World) -> None:
    channel_id = await add_channel(world, "paybill", OWN_PAYBILL)
    await register(world, channel_id, rule="requireKnownReference", minAmount=10, maxAmount="1000")

    unknown = await simulate(world, OWN_PAYBILL, 100, "NOBODY")
    too_small = await simulate(world, OWN_PAYBILL, 5, "NOBODY")
    too_big = await simulate(world, OWN_PAYBILL, 5000, "NOBODY")
    assert (unknown.validation, too_small.validation, too_big.validation) == (
        "C2B00012",
        "C2B00013",
        "C2B00013",
    )
    assert not any(r.completed for r in (unknown, too_small, too_big))

    created = await world.http.post(
        "/api/v1/payment-requests", json={"amount": 100, "accountReference": "INV-77"}, headers=world.a.test
    )
    assert created.status_code == 201, created.text
    known = await simulate(world, OWN_PAYBILL, 100, "inv-77")
    assert known.validation == "accepted"
    assert await count(world, C2bPayment) == 1

    # The validation URL answers malformed bodies, and other shortcodes, with a refusal.
    url = world.sim.sim.c2b_urls[OWN_PAYBILL].validation_url
    body = dict(known.body) | {"TransID": "QWE123RTY9", "OrgAccountBalance": ""}
    async with httpx.AsyncClient() as http:
        other = await http.post(url, json=body | {"BusinessShortCode": "600000"})
        amount = await http.post(url, json=body | {"TransAmount": "-3"})
        garbage = await http.post(url, content=b"[1, 2]", headers={"content-type": "application/json"})
    assert other.json() == {"ResultCode": "C2B00015", "ResultDesc": "Rejected"}
    assert amount.json()["ResultCode"] == "C2B00013"
    assert garbage.json()["ResultCode"] == "C2B00016"


async def test_unknown_or_forged_tokens_are_404_and_change_nothing(world: World) -> None:
    channel_id = await add_channel(world, "paybill", OWN_PAYBILL)
    await register(world, channel_id)
    receipt = await simulate(world, OWN_PAYBILL, 200, "X1")
    real = world.sim.sim.c2b_urls[OWN_PAYBILL].confirmation_url
    forged = real.replace(real.split("/")[-2], "0" * 40)
    body = dict(receipt.body) | {"TransID": "FRG0000001"}
    journals = await count(world, Journal)
    async with httpx.AsyncClient() as http:
        refused = await http.post(forged, json=body)
        refused_validation = await http.post(forged.replace("/confirmation", "/validation"), json=body)
        # The merchant's address, another shortcode: refused, nothing moves.
        mismatch = await http.post(real, json=body | {"BusinessShortCode": "600001"})
        malformed = await http.post(real, json=body | {"TransAmount": "lots"})
    assert refused.status_code == refused_validation.status_code == 404
    assert mismatch.status_code == 409
    assert malformed.status_code == 422
    assert "TransAmount" in malformed.text
    assert await count(world, C2bPayment) == 1
    assert await count(world, Journal) == journals
    await world.verify_ledger()


async def test_registration_is_per_tenant(world: World) -> None:
    channel_id = await add_channel(world, "paybill", OWN_PAYBILL)
    other = await world.http.post(
        f"/api/v1/channels/{channel_id}/register-c2b", json={}, headers=world.b.test
    )
    assert other.status_code == 404
    await register(world, channel_id)
    read = await world.http.get(f"/api/v1/channels/{channel_id}/c2b", headers=world.b.test)
    assert read.status_code == 404


async def test_bad_registration_bodies_name_the_field_and_change_nothing(world: World) -> None:
    channel_id = await add_channel(world, "paybill", OWN_PAYBILL)
    bank = await add_channel(world, "paybill", "522522")
    cases = [
        ({"minAmount": 100, "maxAmount": 10}, "maxAmount"),
        ({"minAmount": "1.234"}, "minAmount"),
        ({"responseType": "Canceled"}, "responseType"),
        ({"rule": "sometimes"}, "rule"),
        ({"callbackUrl": "ftp://x"}, "callbackUrl"),
    ]
    for body, field in cases:
        reply = await world.http.post(
            f"/api/v1/channels/{channel_id}/register-c2b", json=body, headers=world.a.test
        )
        assert reply.status_code == 422, (body, reply.text)
        assert field in reply.text, (body, reply.text)
    assert await count(world, C2bChannel) == 0
    missing = await world.http.get(f"/api/v1/channels/{bank}/c2b", headers=world.a.test)
    assert missing.status_code == 404


async def test_v1_simulate_hashes_the_msisdn(world: World) -> None:
    channel_id = await add_channel(world, "paybill", OWN_PAYBILL)
    await register(world, channel_id)
    receipt = await simulate(world, OWN_PAYBILL, 20, "V1", version="v1")
    payment = await c2b_payment(world, receipt.trans_id)
    assert len(payment.msisdn) == 64
    assert payment.body["TransAmount"] == "20.00"

    async def booked() -> bool:
        return (await collection_of(world, receipt.trans_id)).status == "SUCCESS"

    await eventually(booked, "the v1 payment booked")
