"""T-Kash (63907) has no connector yet: a payment or a withdrawal for it is refused with a 400
naming network_code ("not available yet"), and nothing is held. Airtel Money (63903) has one now
(tests/collections/test_airtel_collections.py, tests/payouts/test_airtel_payouts.py)."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from malipo.collections.models import Collection
from malipo.payouts.models import Payout
from tests.fixtures.world import World, active_holds, fund_payments

PAYER = "254711222333"


@pytest.mark.parametrize(("network_code", "name"), [("63907", "T-Kash")])
async def test_a_payment_on_a_network_without_a_connector_is_refused(
    world: World, network_code: str, name: str
) -> None:
    before = await world.balances()
    body = {"amount": 100, "phone_number": PAYER, "network_code": network_code}
    reply = await world.http.post("/api/v2/payments", json=body, headers=world.a.headers)
    assert reply.status_code == 400, reply.text
    message = reply.json()["error_message"]
    assert message.startswith("network_code"), message
    assert f"{name} ({network_code}) is not available yet" in message
    assert await world.balances() == before
    assert await active_holds(world) == 0
    async with world.db.transaction() as session:
        assert await session.scalar(select(func.count()).select_from(Collection)) == 0


@pytest.mark.parametrize(("network_code", "name"), [("63907", "T-Kash")])
async def test_a_withdrawal_to_a_network_without_a_connector_is_refused(
    world: World, network_code: str, name: str
) -> None:
    await fund_payments(world, 500_00)
    before = await world.balances()
    body = {"amount": 100, "phone_number": PAYER, "network_code": network_code, "channel": "mobile"}
    reply = await world.http.post("/api/v2/withdraw", json=body, headers=world.a.headers)
    assert reply.status_code == 400, reply.text
    message = reply.json()["error_message"]
    assert message.startswith("network_code"), message
    assert f"{name} ({network_code}) is not available yet" in message
    assert await world.balances() == before
    assert await active_holds(world) == 0
    async with world.db.transaction() as session:
        assert await session.scalar(select(func.count()).select_from(Payout)) == 0
