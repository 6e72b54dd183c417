"""What the C2B tests share: the simulator's payer, the channels, the rows to count."""

from __future__ import annotations

import base64
from typing import Any

import httpx
from sqlalchemy import func, select

from malipo.collections.c2b.models import C2bPayment, PaymentRequestPayment
from malipo.collections.models import Collection
from malipo.ledger.models import Journal
from malipo.providers.daraja.simulator.c2b import C2bReceipt
from tests.factories import Merchant
from tests.fixtures.world import World, eventually

OWN_PAYBILL = "600984"
OPERATOR = "174379"  # MALIPO_DARAJA_SHORTCODE's default: the operator's shortcode
PAYER = "254708374149"


async def sim_token(world: World) -> str:
    pair = base64.b64encode(b"malipo-sandbox:malipo-sandbox").decode()
    async with httpx.AsyncClient(base_url=world.sim.url) as http:
        reply = await http.get(
            "/oauth/v1/generate", params={"grant_type": "client_credentials"},
            headers={"Authorization": f"Basic {pair}"},
        )  # fmt: skip
    return str(reply.json()["access_token"])


async def simulate(
    world: World, short_code: str, amount: int, bill_ref: str = "", *, till: bool = False, version: str = "v2"
) -> C2bReceipt:
    """A payer pays through the simulator's C2B simulate; the receipt once M-Pesa decided."""
    body = {
        "ShortCode": short_code, "CommandID": "CustomerBuyGoodsOnline" if till else "CustomerPayBillOnline",
        "Amount": amount, "Msisdn": PAYER, "BillRefNumber": bill_ref,
    }  # fmt: skip
    before = set(world.sim.sim.c2b_payments)
    async with httpx.AsyncClient(base_url=world.sim.url) as http:
        reply = await http.post(
            f"/mpesa/c2b/{version}/simulate",
            json=body,
            headers={"Authorization": f"Bearer {await sim_token(world)}"},
        )
    assert reply.status_code == 200, reply.text
    [trans_id] = set(world.sim.sim.c2b_payments) - before
    receipt: C2bReceipt = world.sim.sim.c2b_payments[trans_id]

    async def decided() -> bool:
        return (
            receipt.completed is False
            or receipt.confirmed
            or (receipt.completed is True and receipt.validation == "no-validation")
        )

    await eventually(decided, f"C2B payment {trans_id} to be decided")
    return receipt


async def add_channel(world: World, kind: str, short_code: str, merchant: Merchant | None = None) -> int:
    body = {"channelType": kind, "shortCode": short_code, "description": f"Shop {kind}"}
    reply = await world.http.post("/api/v1/channels", json=body, headers=(merchant or world.a).test)
    assert reply.status_code == 201, reply.text
    return int(reply.json()["id"])


async def wallet_channel(world: World, merchant: Merchant | None = None) -> int:
    reply = await world.http.get("/api/v1/channels", headers=(merchant or world.a).test)
    assert reply.status_code == 200, reply.text
    [wallet] = [c for c in reply.json()["channels"] if c["channelType"] == "wallet"]
    return int(wallet["id"])


async def register(
    world: World, channel_id: int, merchant: Merchant | None = None, **rules: Any
) -> dict[str, Any]:
    """Register C2B for the channel over the API and wait for Daraja's (the simulator's) answer."""
    headers = (merchant or world.a).test
    reply = await world.http.post(f"/api/v1/channels/{channel_id}/register-c2b", json=rules, headers=headers)
    assert reply.status_code == 202, reply.text

    async def registered() -> dict[str, Any] | None:
        found = (await world.http.get(f"/api/v1/channels/{channel_id}/c2b", headers=headers)).json()
        return found if found["registrationStatus"] == "registered" else None

    return await eventually(registered, f"channel {channel_id}'s C2B registration")  # type: ignore[no-any-return]


async def count(world: World, model: type[Any], *where: Any) -> int:
    async with world.db.transaction() as session:
        return int(await session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


async def c2b_payment(world: World, trans_id: str) -> C2bPayment:
    async with world.db.transaction() as session:
        found = await session.scalar(select(C2bPayment).where(C2bPayment.trans_id == trans_id))
    assert found is not None, f"no C2B payment {trans_id}"
    return found


async def collection_of(world: World, trans_id: str) -> Collection:
    async with world.db.transaction() as session:
        found = await session.scalar(select(Collection).where(Collection.mpesa_receipt == trans_id))
    assert found is not None, f"no collection for {trans_id}"
    return found


async def journals_of(world: World, reference: str) -> list[Journal]:
    return [j for j in await world.journals() if (j.details or {}).get("reference") == reference]


__all__ = ["PaymentRequestPayment"]
