"""Hosted checkout and payment links over real HTTP against a served malipo, its worker, the Daraja
simulator and the mounted card acquirer simulator: a session paid once by M-Pesa or card (with the
merchant's webhook and the books), a failed attempt that can be tried again, expiry, the attempt
limit, validation, tenancy; links with fixed and payer-chosen amounts, bounds, slugs, turning off."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import httpx
import pytest

from malipo.checkout import repository, service
from malipo.core.clock import SystemClock
from tests.cards.helpers import CHALLENGE, DECLINED, RIGHT_CODE, VISA
from tests.fixtures.world import CANCELLED, PAYS, Mailbox, World, eventually

CARD = {"expiryMonth": 12, "expiryYear": 2030, "cvv": "123"}


async def _create(world: World, headers: dict[str, str] | None = None, **body: Any) -> dict[str, Any]:
    payload = {"amount": "1500", "currency": "KES", "returnUrl": "https://shop.example.com/back?o=7", **body}
    reply = await world.http.post(
        "/api/v1/checkout/sessions", json=payload, headers=headers or world.a.headers
    )
    assert reply.status_code == 201, reply.text
    return dict(reply.json())


async def _read(world: World, session_id: str) -> dict[str, Any]:
    reply = await world.http.get(f"/api/v1/checkout/sessions/{session_id}", headers=world.a.headers)
    assert reply.status_code == 200, reply.text
    return dict(reply.json())


async def _settled(world: World, session_id: str) -> dict[str, Any]:
    async def done() -> dict[str, Any] | None:
        status = (await world.http.get(f"/checkout/{session_id}/status")).json()
        return status if status["status"] != "pending" else None

    return await eventually(done, f"checkout session {session_id} to leave pending")  # type: ignore[no-any-return]


async def test_a_session_paid_by_mpesa_once_with_webhook_and_books(world: World, mailbox: Mailbox) -> None:
    before = await world.balances()
    created = await _create(world, callbackUrl=mailbox.url, orderId="ORD-7", description="Coffee")
    sid = created["sessionId"]
    assert created["url"] == f"{world.url}/checkout/{sid}"
    assert created["status"] == "open"
    assert created["methods"] == ["mpesa", "card"]
    page = await world.http.get(created["url"])
    assert page.status_code == 200
    assert "KES 1500.00" in page.text
    assert "Coffee" in page.text
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]

    sent = await world.http.post(f"/checkout/{sid}/mpesa", json={"phone": "0711 222 333"})
    assert sent.status_code == 200, sent.text
    assert sent.json()["status"] == "pending"
    status = await _settled(world, sid)
    assert status["status"] == "completed"
    assert status["receipt"]
    assert (
        status["redirectUrl"] == f"https://shop.example.com/back?o=7&checkoutSessionId={sid}&status=completed"
    )

    read = await _read(world, sid)
    assert read["method"] == "mpesa"
    assert read["attempts"] == 1
    assert read["completedAt"]
    collection = await world.collection(read["paymentReference"])
    assert collection.status == "SUCCESS"
    assert collection.phone == PAYS
    assert collection.amount == 1500_00
    assert collection.external_reference == f"{sid}-1"
    after = await world.balances()
    assert after.payments[0] - before.payments[0] == 1500_00
    assert before.service[0] - after.service[0] == collection.fee  # the fee from the service wallet
    await world.verify_ledger()

    bodies = await mailbox.wait_for(1)
    assert [b["type"] for b in bodies] == ["checkout.session.completed"]
    assert bodies[0]["data"]["sessionId"] == sid
    assert bodies[0]["data"]["orderId"] == "ORD-7"
    assert bodies[0]["data"]["receipt"] == status["receipt"]

    again = await world.http.post(f"/checkout/{sid}/mpesa", json={"phone": "0711222333"})
    assert again.status_code == 409
    assert "paid already" in again.json()["detail"]
    card = await world.http.post(f"/checkout/{sid}/card", json={"cardNumber": VISA, **CARD})
    assert card.status_code == 409
    assert (await world.balances()).payments == after.payments


async def test_a_cancelled_prompt_reopens_the_session_and_a_second_attempt_pays(world: World) -> None:
    sid = (await _create(world))["sessionId"]
    await world.http.post(f"/checkout/{sid}/mpesa", json={"phone": CANCELLED})
    status = await _settled(world, sid)
    assert status["status"] == "open"
    assert status["canPay"] is True
    assert status["message"] == "You cancelled the M-Pesa prompt."
    await world.http.post(f"/checkout/{sid}/mpesa", json={"phone": PAYS})
    assert (await _settled(world, sid))["status"] == "completed"
    read = await _read(world, sid)
    assert read["attempts"] == 2
    assert read["lastError"] is None
    collection = await world.collection(read["paymentReference"])
    assert collection.external_reference == f"{sid}-2"


async def test_a_payment_in_flight_refuses_a_second_one(world: World) -> None:
    sid = (await _create(world))["sessionId"]
    first = await world.http.post(f"/checkout/{sid}/mpesa", json={"phone": PAYS})
    second = await world.http.post(f"/checkout/{sid}/card", json={"cardNumber": VISA, **CARD})
    assert first.status_code == 200
    if first.json()["status"] == "pending":  # the callback may already be in
        assert second.status_code == 409
    await _settled(world, sid)
    assert len([c for c in await world.collections() if c.external_reference == f"{sid}-1"]) == 1


async def test_a_card_with_a_challenge_captures_once_the_payer_passes_it(world: World) -> None:
    before = await world.balances()
    sid = (await _create(world, amount="99.50"))["sessionId"]
    assert (await _read(world, sid))["methods"] == ["card"]  # cents: not M-Pesa
    refused = await world.http.post(f"/checkout/{sid}/mpesa", json={"phone": PAYS})
    assert refused.status_code == 422
    assert refused.json()["errors"][0]["field"] == "method"

    started = await world.http.post(f"/checkout/{sid}/card", json={"cardNumber": CHALLENGE, **CARD})
    assert started.status_code == 200, started.text
    acs = started.json()["redirectUrl"]
    assert started.json()["status"] == "pending"
    assert acs.startswith(f"{world.url}/_sim/cards/acs/")
    async with httpx.AsyncClient(timeout=10) as browser:
        answered = await browser.post(acs, data={"code": RIGHT_CODE, "action": "verify"})
        back = await browser.get(answered.headers["location"])
    assert back.status_code == 303
    assert (
        back.headers["location"]
        == f"https://shop.example.com/back?o=7&checkoutSessionId={sid}&status=completed"
    )
    read = await _read(world, sid)
    assert read["status"] == "completed"
    assert read["method"] == "card"
    auth = await world.http.get(
        f"/api/v1/cards/authorizations/{(await _authorization_id(world, sid))}", headers=world.a.headers
    )
    assert auth.json()["status"] == "captured"
    assert auth.json()["capturedAmount"] == "99.50"
    fee = round(float(auth.json()["fee"]) * 100)
    after = await world.balances()
    assert after.payments[0] - before.payments[0] == 99_50 - fee
    await world.verify_ledger()


async def _authorization_id(world: World, public_id: str) -> uuid.UUID:
    async with world.db.transaction() as session:
        cs = await repository.session_by_public_id(session, public_id)
    assert cs is not None
    assert cs.card_authorization_id is not None
    return cs.card_authorization_id


async def test_a_declined_card_says_why_moves_nothing_and_another_card_pays(world: World) -> None:
    before = await world.balances()
    sid = (await _create(world))["sessionId"]
    declined = await world.http.post(f"/checkout/{sid}/card", json={"cardNumber": DECLINED, **CARD})
    assert declined.status_code == 200, declined.text
    assert declined.json()["status"] == "open"
    assert declined.json()["message"].startswith("Your card was declined:")
    assert (await world.balances()).payments == before.payments
    paid = await world.http.post(f"/checkout/{sid}/card", json={"cardNumber": VISA, **CARD})
    assert paid.json()["status"] == "completed"
    assert (await _read(world, sid))["attempts"] == 2


async def test_an_expired_session_cannot_be_paid_and_the_merchant_is_told(
    world: World, mailbox: Mailbox
) -> None:
    sid = (await _create(world, callbackUrl=mailbox.url, expiresInMinutes=5))["sessionId"]
    async with world.db.transaction() as session:  # its 5 minutes are over
        cs = await repository.session_by_public_id(session, sid)
        assert cs is not None
        cs.expires_at = SystemClock().now() - timedelta(seconds=1)
    async with world.db.transaction() as session:
        assert await service.expire(session, cs.id, now=SystemClock().now()) is None
    assert (await _read(world, sid))["status"] == "expired"
    refused = await world.http.post(f"/checkout/{sid}/mpesa", json={"phone": PAYS})
    assert refused.status_code == 409
    assert "expired" in refused.json()["detail"]
    page = await world.http.get(f"/checkout/{sid}")
    assert page.status_code == 200
    assert 'data-status="expired"' in page.text
    bodies = await mailbox.wait_for(1)
    assert bodies[0]["type"] == "checkout.session.expired"


async def test_the_attempts_are_limited(world: World) -> None:
    sid = (await _create(world))["sessionId"]
    for _ in range(service.MAX_ATTEMPTS):
        reply = await world.http.post(f"/checkout/{sid}/card", json={"cardNumber": DECLINED, **CARD})
        assert reply.json()["status"] == "open"
    assert reply.json()["canPay"] is False
    last = await world.http.post(f"/checkout/{sid}/card", json={"cardNumber": VISA, **CARD})
    assert last.status_code == 409
    assert "attempts" in last.json()["detail"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"amount": "-5"}, "amount"),
        ({"amount": True}, "amount"),
        ({"amount": "1.234"}, "amount"),
        ({"currency": "KE"}, "currency"),
        ({"currency": "XYZ"}, "currency"),
        ({"returnUrl": "javascript:alert(1)"}, "returnUrl"),
        ({"expiresInMinutes": 2}, "expiresInMinutes"),
        ({"description": "evil\u202eevil"}, "description"),
        ({"channelId": 999_999}, "channelId"),
        ({"shoeSize": 44}, "shoeSize"),
    ],
)
async def test_bad_session_requests_name_the_field_and_store_nothing(
    world: World, body: dict[str, Any], field: str
) -> None:
    from malipo.checkout.models import CheckoutSession

    before = await world.count(CheckoutSession)
    payload = {"amount": "1500", "currency": "KES", **body}
    reply = await world.http.post("/api/v1/checkout/sessions", json=payload, headers=world.a.headers)
    assert 400 <= reply.status_code < 500, reply.text
    assert field in {e["field"].split(".")[-1] for e in reply.json()["errors"]}, reply.text
    assert await world.count(CheckoutSession) == before


async def test_bad_payer_input_is_a_clear_4xx(world: World) -> None:
    sid = (await _create(world))["sessionId"]
    phone = await world.http.post(f"/checkout/{sid}/mpesa", json={"phone": "0200 000 000"})
    assert phone.status_code == 422
    assert phone.json()["errors"][0]["field"] == "phone"
    card = await world.http.post(f"/checkout/{sid}/card", json={"cardNumber": "4242424242424241", **CARD})
    assert card.status_code == 422
    assert card.json()["errors"][0]["field"] == "cardNumber"
    assert "4242424242424241" not in card.text
    unknown = await world.http.get("/checkout/cs_doesnotexist000000000000")
    assert unknown.status_code == 404
    assert "does not exist" in unknown.text
    assert (await world.http.post("/checkout/cs_nope00000000/mpesa", json={"phone": PAYS})).status_code == 404
    assert (await world.http.get("/checkout/..%2Fetc")).status_code in (404, 422)
    assert (await _read(world, sid))["attempts"] == 0


async def test_another_merchants_session_is_a_404(world: World) -> None:
    sid = (await _create(world))["sessionId"]
    other = await world.http.get(f"/api/v1/checkout/sessions/{sid}", headers=world.b.headers)
    assert other.status_code == 404


# --------------------------------------------------------------------------- payment links


async def _link(world: World, **body: Any) -> dict[str, Any]:
    reply = await world.http.post(
        "/api/v1/payment-links", json={"title": "School fund", **body}, headers=world.a.headers
    )
    assert reply.status_code == 201, reply.text
    return dict(reply.json())


async def test_a_fixed_amount_link_is_paid_by_mpesa(world: World, mailbox: Mailbox) -> None:
    before = await world.balances()
    link = await _link(world, amount="250", description="Fees", callbackUrl=mailbox.url)
    assert link["url"] == f"{world.url}/pay/{link['slug']}"
    assert link["amount"] == "250.00"
    assert f'data-link="{link["slug"]}"' in link["buttonSnippet"]
    page = await world.http.get(link["url"])
    assert page.status_code == 200
    assert "School fund" in page.text
    assert "KES 250" in page.text
    paid = await world.http.post(f"/pay/{link['slug']}", json={"amount": "999", "phone": PAYS})
    assert paid.status_code == 200, paid.text
    sid = paid.json()["sessionId"]
    status = await _settled(world, sid)
    assert status["status"] == "completed"
    assert status["amount"] == "250.00"
    read = (await world.http.get(f"/api/v1/payment-links/{link['linkId']}", headers=world.a.headers)).json()
    assert read["payments"] == 1
    assert read["totalPaid"] == "250.00"
    assert (await _read(world, sid))["linkId"] == link["linkId"]
    assert (await world.balances()).payments[0] - before.payments[0] == 250_00
    assert (await mailbox.wait_for(1))[0]["type"] == "checkout.session.completed"


async def test_a_payer_chosen_amount_is_held_to_the_links_bounds(world: World) -> None:
    link = await _link(world, minAmount="50", maxAmount="1000", slug=f"fund-{uuid.uuid4().hex[:8]}")
    for amount, expected in (("", 422), ("10", 422), ("5000", 422), ("12.50", 422), (None, 422)):
        body: dict[str, Any] = {"phone": PAYS} if amount is None else {"amount": amount, "phone": PAYS}
        reply = await world.http.post(f"/pay/{link['slug']}", json=body)
        assert reply.status_code == expected, (amount, reply.text)
        assert reply.json()["errors"][0]["field"] == "amount"
    reply = await world.http.post(f"/pay/{link['slug']}", json={"amount": "75", "phone": PAYS})
    assert (await _settled(world, reply.json()["sessionId"]))["amount"] == "75.00"


async def test_links_slugs_bounds_tenancy_and_turning_off(world: World) -> None:
    slug = f"shop-{uuid.uuid4().hex[:8]}"
    link = await _link(world, slug=slug)
    taken = await world.http.post(
        "/api/v1/payment-links", json={"title": "Again", "slug": slug}, headers=world.b.headers
    )
    assert taken.status_code == 409
    assert taken.json()["errors"][0]["field"] == "slug"
    for bad in ({"slug": "A!"}, {"amount": "0"}, {"minAmount": "100", "maxAmount": "10"},
                {"amount": "10", "minAmount": "5"}, {"title": ""}):  # fmt: skip
        reply = await world.http.post(
            "/api/v1/payment-links", json={"title": "x", **bad}, headers=world.a.headers
        )
        assert reply.status_code == 422, (bad, reply.text)
    mine = await world.http.get("/api/v1/payment-links", headers=world.a.headers)
    assert link["linkId"] in {item["linkId"] for item in mine.json()}
    theirs = await world.http.get("/api/v1/payment-links", headers=world.b.headers)
    assert link["linkId"] not in {item["linkId"] for item in theirs.json()}
    assert (
        await world.http.get(f"/api/v1/payment-links/{link['linkId']}", headers=world.b.headers)
    ).status_code == 404
    off = await world.http.patch(
        f"/api/v1/payment-links/{link['linkId']}", json={"isActive": False}, headers=world.a.headers
    )
    assert off.status_code == 200
    assert off.json()["isActive"] is False
    assert (await world.http.get(f"/pay/{slug}")).status_code == 404
    assert (await world.http.post(f"/pay/{slug}", json={"amount": "60", "phone": PAYS})).status_code == 404
    notbool = await world.http.patch(
        f"/api/v1/payment-links/{link['linkId']}", json={"isActive": "yes"}, headers=world.a.headers
    )
    assert notbool.status_code == 422


async def test_button_js_is_served_for_any_origin(world: World) -> None:
    reply = await world.http.get("/button.js")
    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith("text/javascript")
    assert "paymentSuccess" in reply.text
    assert reply.headers["access-control-allow-origin"] == "*"
    assert (await world.http.get("/assets/pay.js")).status_code == 200
    assert (await world.http.get("/assets/nothing.js")).status_code == 404


async def test_one_phone_gets_at_most_five_prompts_in_ten_minutes(world: World) -> None:
    sessions = [(await _create(world))["sessionId"] for _ in range(6)]
    for sid in sessions[:5]:
        sent = await world.http.post(f"/checkout/{sid}/mpesa", json={"phone": CANCELLED})
        assert sent.status_code == 200, sent.text
    refused = await world.http.post(f"/checkout/{sessions[5]}/mpesa", json={"phone": "+" + CANCELLED})
    assert refused.status_code == 429
    assert "this phone" in refused.json()["detail"]
    assert int(refused.headers["retry-after"]) == 600
    assert (await _read(world, sessions[5]))["attempts"] == 0
    other = await world.http.post(f"/checkout/{sessions[5]}/mpesa", json={"phone": PAYS})
    assert other.status_code == 200
