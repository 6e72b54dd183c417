"""What existing Pay Hero clients send, byte for byte, is understood.

The requests below are those of the Python client on PyPI, py-payhero 0.0.2 (``PayHero/main.py``):
``requests.post(url, headers={"Authorization": "Basic …"}, data=json.dumps(body))`` — a JSON body
with no Content-Type at all for ``/topup``, and ``channel_id`` as a string for ``/payments``.
"""

from __future__ import annotations

import json

from tests.fixtures.world import PAYS, Mailbox, World


async def test_a_json_body_without_content_type_is_read_as_json(world: World) -> None:
    body = json.dumps({"amount": 50, "phone_number": "0711222333"}).encode()
    reply = await world.http.post("/api/v2/topup", content=body, headers=world.a.basic)
    assert "content-type" not in reply.request.headers
    assert reply.status_code == 201, reply.text
    assert reply.json()["status"] == "QUEUED"


async def test_py_payhero_stk_push_with_a_string_channel_id(world: World, mailbox: Mailbox) -> None:
    channels = await world.http.get("/api/v2/payment_channels", headers=world.a.basic)
    wallet_channel = channels.json()["payment_channels"][0]["id"]
    body = {
        "amount": 10, "phone_number": PAYS, "channel_id": str(wallet_channel), "provider": "m-pesa",
        "external_reference": "INV-PY-1", "customer_name": "Jane", "callback_url": mailbox.url,
    }  # fmt: skip
    reply = await world.http.post(
        "/api/v2/payments",
        content=json.dumps(body),
        headers={**world.a.basic, "Content-Type": "application/json"},
    )
    assert reply.status_code == 201, reply.text
    [callback] = await mailbox.wait_for(1)
    status = await world.http.get(
        "/api/v2/transaction-status", params={"reference": reply.json()["reference"]}, headers=world.a.basic
    )
    assert status.json()["status"] == "SUCCESS"
    assert callback["response"]["ExternalReference"] == "INV-PY-1"
    assert callback["status"] is True


async def test_a_body_that_is_not_json_is_a_400_naming_the_body(world: World) -> None:
    reply = await world.http.post("/api/v2/payments", content=b"amount=10", headers=world.a.basic)
    assert reply.status_code == 400
    assert reply.json()["error_code"] == "invalid_argument"
