"""Payment requests: settled by C2B payments naming their account reference (partial payments add
up, what is paid beyond is an overpayment, never lost), or by an STK push offered for them;
listed, read, cancelled, expired; per tenant. Real HTTP through the Daraja simulator."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from malipo.collections.c2b.models import PaymentRequest, PaymentRequestPayment
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
from tests.fixtures.world import PAYS, SERVICE_FUNDS, Mailbox, World, eventually


async def _request(world: World, **body: Any) -> dict[str, Any]:
    reply = await world.http.post("/api/v1/payment-requests", json=body, headers=world.a.test)
    assert reply.status_code == 201, reply.text
    return reply.json()  # type: ignore[no-any-return]


async def _read(world: World, request_id: str) -> dict[str, Any]:
    reply = await world.http.get(f"/api/v1/payment-requests/{request_id}", headers=world.a.test)
    assert reply.status_code == 200, reply.text
    return reply.json()  # type: ignore[no-any-return]


async def test_partial_payments_add_up_then_the_rest_is_an_overpayment(
    world: World, mailbox: Mailbox
) -> None:
    wallet_id = await wallet_channel(world)
    await register(world, wallet_id, rule="requireKnownReference")
    request = await _request(world, amount=1000, accountReference="INV-100", callbackUrl=mailbox.url)
    assert (request["status"], request["paidAmount"], request["overpaid"]) == ("open", "0.00", False)
    before = await world.balances()

    first = await simulate(world, OPERATOR, 400, f"{wallet_id}#INV-100")
    found = await _read(world, request["id"])
    assert (found["status"], found["paidAmount"], found["overpaidAmount"]) == ("open", "400.00", "0.00")

    second = await simulate(world, OPERATOR, 700, f"{wallet_id}#inv-100")
    found = await _read(world, request["id"])
    assert (found["status"], found["paidAmount"], found["overpaidAmount"]) == ("paid", "1000.00", "100.00")
    assert found["overpaid"] is True
    assert found["paidAt"] is not None
    assert [(p["amount"], p["overpaid"], p["receipt"]) for p in found["payments"]] == [
        ("400.00", "0.00", first.trans_id),
        ("700.00", "100.00", second.trans_id),
    ]
    assert (await c2b_payment(world, second.trans_id)).overpaid == 100_00

    # A payment of the paid request: validation (known references only) refuses it ...
    refused = await simulate(world, OPERATOR, 50, f"{wallet_id}#INV-100")
    assert refused.validation == "C2B00012"
    # ... but M-Pesa may complete without asking (validation off, or its timeout): kept, credited.
    url = world.sim.sim.c2b_urls[OPERATOR].confirmation_url
    late = dict(second.body) | {"TransID": "LATE000001", "TransAmount": "50.00"}
    confirmed = await world.http.post(url.removeprefix(world.url), json=late)
    assert confirmed.status_code == 200, confirmed.text
    found = await _read(world, request["id"])
    assert (found["paidAmount"], found["overpaidAmount"]) == ("1000.00", "150.00")

    after = await world.balances()
    assert after.payments[0] - before.payments[0] == 1150_00, "every shilling credited, overpayments too"
    await world.verify_ledger()
    callbacks = await mailbox.wait_for(3)
    assert sorted(c["response"]["Amount"] for c in callbacks) == [50, 400, 700]

    overpaid = await world.http.get(
        "/api/v1/payment-requests", params={"overpaid": "true"}, headers=world.a.test
    )
    assert [r["id"] for r in overpaid.json()["paymentRequests"]] == [request["id"]]


async def test_payment_of_a_cancelled_request_is_kept_as_an_overpayment(world: World) -> None:
    channel_id = await add_channel(world, "paybill", OWN_PAYBILL)
    await register(world, channel_id)
    request = await _request(world, amount="250.50", accountReference="ORDER7", channelId=channel_id)
    cancelled = await world.http.post(
        f"/api/v1/payment-requests/{request['id']}/cancel", headers=world.a.test
    )
    assert cancelled.json()["status"] == "cancelled"
    again = await world.http.post(f"/api/v1/payment-requests/{request['id']}/cancel", headers=world.a.test)
    assert again.status_code == 200

    receipt = await simulate(world, OWN_PAYBILL, 300, "ORDER7")
    assert receipt.confirmed, "acceptAll: the payment goes ahead"
    found = await _read(world, request["id"])
    assert (found["status"], found["paidAmount"], found["overpaidAmount"]) == ("cancelled", "0.00", "300.00")
    payment = await c2b_payment(world, receipt.trans_id)
    assert (payment.overpaid, str(payment.payment_request_id)) == (300_00, request["id"])
    await world.verify_ledger()

    # The reference is free again: a new open request may use it.
    fresh = await _request(world, amount=10, accountReference="ORDER7")
    assert fresh["status"] == "open"


async def test_an_expired_request_expires_on_read_and_frees_its_reference(world: World) -> None:
    request = await _request(world, amount=10, accountReference="SOON", expiresInMinutes=1)
    async with world.db.transaction() as session:
        row = await session.get(PaymentRequest, __import__("uuid").UUID(request["id"]))
        assert row is not None
        row.expires_at = datetime.now(UTC) - timedelta(seconds=1)
    assert (await _read(world, request["id"]))["status"] == "expired"
    taken = await world.http.post(
        "/api/v1/payment-requests", json={"amount": 10, "accountReference": "SOON"}, headers=world.a.test
    )
    assert taken.status_code == 201
    dup = await world.http.post(
        "/api/v1/payment-requests", json={"amount": 10, "accountReference": "SOON"}, headers=world.a.test
    )
    assert dup.status_code == 409
    assert "accountReference" in dup.text


async def test_stk_push_for_a_request_settles_it(world: World, mailbox: Mailbox) -> None:
    request = await _request(world, amount=600, accountReference="INV-STK", callbackUrl=mailbox.url)
    before = await world.balances()
    pushed = await world.http.post(
        f"/api/v1/payment-requests/{request['id']}/stk-push", json={"phoneNumber": PAYS}, headers=world.a.test
    )
    assert pushed.status_code == 201, pushed.text
    assert pushed.json()["amount"] == "600.00"

    async def paid() -> dict[str, Any] | None:
        found = await _read(world, request["id"])
        return found if found["status"] == "paid" else None

    found = await eventually(paid, "the request paid by STK push")
    assert found["paidAmount"] == "600.00"
    assert found["payments"][0]["receipt"]
    [callback] = await mailbox.wait_for(1)
    assert callback["response"]["Amount"] == 600
    after = await world.balances()
    assert after.payments[0] - before.payments[0] == 600_00
    assert after.service == (SERVICE_FUNDS - 9_00, 0)
    await world.verify_ledger()
    assert await count(world, PaymentRequestPayment) == 1

    closed = await world.http.post(
        f"/api/v1/payment-requests/{request['id']}/stk-push", json={"phoneNumber": PAYS}, headers=world.a.test
    )
    assert closed.status_code == 409


async def test_requests_are_per_tenant(world: World) -> None:
    request = await _request(world, amount=10, accountReference="MINE")
    for method, path in (
        ("GET", f"/api/v1/payment-requests/{request['id']}"),
        ("POST", f"/api/v1/payment-requests/{request['id']}/cancel"),
    ):
        reply = await world.http.request(method, path, headers=world.b.test)
        assert reply.status_code == 404, reply.text
    pushed = await world.http.post(
        f"/api/v1/payment-requests/{request['id']}/stk-push", json={"phoneNumber": PAYS}, headers=world.b.test
    )
    assert pushed.status_code == 404
    listed = await world.http.get("/api/v1/payment-requests", headers=world.b.test)
    assert listed.json()["total"] == 0
    # B's own request may use the same reference: references are per merchant.
    mine = await world.http.post(
        "/api/v1/payment-requests", json={"amount": 10, "accountReference": "MINE"}, headers=world.b.test
    )
    assert mine.status_code == 201
    assert (await _read(world, request["id"]))["status"] == "open"


async def test_bad_request_bodies_name_the_field_and_change_nothing(world: World) -> None:
    past = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    cases = [
        ({"amount": -5, "accountReference": "A1"}, "amount"),
        ({"amount": "1.234", "accountReference": "A1"}, "amount"),
        ({"amount": 10, "accountReference": "has#hash"}, "accountReference"),
        ({"amount": 10, "accountReference": "A" * 21}, "accountReference"),
        ({"amount": 10, "accountReference": "A1", "expiresAt": past}, "expiresAt"),
        ({"amount": 10, "accountReference": "A1", "expiresInMinutes": 0}, "expiresInMinutes"),
        ({"amount": 10, "accountReference": "A1", "channelId": 999999}, "channelId"),
    ]
    for body, field in cases:
        reply = await world.http.post("/api/v1/payment-requests", json=body, headers=world.a.test)
        assert 400 <= reply.status_code < 500, (body, reply.text)
        assert field in reply.text, (body, reply.text)
    request = await _request(world, amount=10, accountReference="A1")
    bad_phone = await world.http.post(
        f"/api/v1/payment-requests/{request['id']}/stk-push", json={"phoneNumber": "12345678901"},
        headers=world.a.test,
    )  # fmt: skip
    assert bad_phone.status_code == 422
    assert "phoneNumber" in bad_phone.text
    assert await count(world, PaymentRequest) == 1


async def test_the_same_idempotency_key_replays_the_request(world: World) -> None:
    headers = world.a.test | {"Idempotency-Key": "req-1"}
    body = {"amount": 10, "accountReference": "IDEM"}
    first = await world.http.post("/api/v1/payment-requests", json=body, headers=headers)
    second = await world.http.post("/api/v1/payment-requests", json=body, headers=headers)
    assert first.status_code == second.status_code == 201
    assert first.json()["id"] == second.json()["id"]
    other = await world.http.post("/api/v1/payment-requests", json=body | {"amount": 11}, headers=headers)
    assert other.status_code == 422, "the key reused for another body (the project's idempotency rule)"
    assert "idempotency_key_reused" in other.text
    assert await count(world, PaymentRequest) == 1


async def test_c2b_payments_are_listed_in_pay_heros_transactions(world: World) -> None:
    channel_id = await add_channel(world, "till", "5123456")
    await register(world, channel_id)
    receipt = await simulate(world, "5123456", 75, till=True)
    collection = await collection_of(world, receipt.trans_id)
    listed = (await world.http.get("/api/v2/transactions", headers=world.a.headers)).json()
    text = str(listed)
    assert collection.reference in text
    assert receipt.trans_id in text
