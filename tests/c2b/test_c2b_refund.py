"""A paybill payment into the payments wallet is refunded by Daraja's reversal like any collection:
the simulator knows the C2B receipt, the refund journals the money back through clearing."""

from __future__ import annotations

from malipo.ledger.models import AccountKind
from tests.c2b.helpers import OPERATOR, collection_of, register, simulate, wallet_channel
from tests.fixtures.world import World
from tests.reconciliation.helpers import system_balance
from tests.refunds.test_refunds import ask_refund, final_refund


async def test_a_c2b_payment_is_refunded_in_part_then_in_full_by_reversal(world: World) -> None:
    wallet_id = await wallet_channel(world)
    await register(world, wallet_id)
    receipt = await simulate(world, OPERATOR, 800, f"{wallet_id}#ORDER-77")
    assert receipt.confirmed
    collection = await collection_of(world, receipt.trans_id)
    paid = await world.balances()
    clearing = await system_balance(world, AccountKind.MOBILE_MONEY_CLEARING)

    first = await ask_refund(world, collection.reference, amount=300)
    assert first.status_code == 201, first.text
    done = await final_refund(world, first.json()["id"])
    assert done["status"] == "completed", done
    rest = await ask_refund(world, collection.reference)
    assert rest.status_code == 201, rest.text
    assert (await final_refund(world, rest.json()["id"]))["status"] == "completed"
    over = await ask_refund(world, collection.reference, amount=1)
    assert over.status_code == 409, "nothing is left to refund"

    after = await world.balances()
    assert paid.payments[0] - after.payments[0] == 800_00, "the whole payment went back to the payer"
    assert clearing - await system_balance(world, AccountKind.MOBILE_MONEY_CLEARING) == -800_00
    assert world.sim.sim.reversed[receipt.trans_id] == 800, "M-Pesa reversed the C2B receipt"
    await world.verify_ledger()
