"""Requests and Daraja callbacks that arrive together are written together (group commit), and
each caller still gets exactly the answer it would get alone: refusals stay per request, the
service wallet covers fees in arrival order, a caller no longer allowed in is refused."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import update

from malipo.core import crypto
from malipo.identity.models import ApiUser
from malipo.ledger.models import Hold
from tests.collections.test_stk_collections import success_callback
from tests.fixtures.world import NO_CALLBACK, PAYS, SERVICE_FUNDS, Mailbox, World, eventually

BIG = 10_000  # shillings: the fee is 1.5 % = KES 150, so merchant A's KES 500 covers three


async def test_a_burst_of_requests_holds_fees_while_the_service_wallet_covers_them(world: World) -> None:
    replies = await asyncio.gather(*(world.pay(BIG, PAYS) for _ in range(6)))
    accepted = [r for r in replies if r.status_code == 201]
    refused = [r for r in replies if r.status_code != 201]
    assert len(accepted) == 3, [r.text for r in replies]
    assert {r.status_code for r in refused} == {400}
    assert {r.json()["error_code"] for r in refused} == {"invalid_argument"}  # Pay Hero's code for a 400
    for reply in refused:  # each names what the wallet had left after the three before it
        assert "service wallet holds (KES 50.00)" in reply.json()["error_message"], reply.text
    # The refused ones wrote nothing: three collections, three holds.
    assert len(await world.collections()) == 3
    assert await world.count(Hold) == 3
    for reply in accepted:
        await world.final_status(reply.json()["reference"])
    after = await world.balances()
    assert after.service == (SERVICE_FUNDS - 3 * 150_00, 0)
    assert after.payments == (3 * BIG * 100, 0)
    assert after.fee_revenue == 3 * 150_00
    await world.verify_ledger()


async def test_bad_and_good_requests_in_one_burst_are_answered_each_on_its_own(world: World) -> None:
    bodies: list[dict[str, Any]] = [
        {"amount": 100, "phone_number": PAYS},
        {"amount": 100, "phone_number": "0711"},  # not a phone number
        {"amount": 100, "phone_number": PAYS, "network_code": "99999"},
        {"amount": 100, "phone_number": PAYS, "channel_id": 987654},  # no such channel
        {"amount": 200, "phone_number": PAYS, "external_reference": "SAME"},
        {"amount": 200, "phone_number": PAYS, "external_reference": "SAME"},
    ]
    replies = await asyncio.gather(
        *(world.http.post("/api/v2/payments", json=body, headers=world.a.headers) for body in bodies)
    )
    assert [r.status_code for r in replies] == [201, 400, 400, 404, 201, 201], [r.text for r in replies]
    assert "phone_number" in replies[1].text
    assert "network_code" in replies[2].text
    assert "channel_id" in replies[3].text
    assert replies[4].json()["reference"] == replies[5].json()["reference"]
    assert len(await world.collections()) == 2
    assert await world.count(Hold) == 2


async def test_the_batch_refuses_a_caller_disabled_or_whose_password_changed_since_its_last_request(
    world: World,
) -> None:
    async def pay() -> int:
        body = {"amount": 100, "phone_number": PAYS}
        return (await world.http.post("/api/v2/payments", json=body, headers=world.a.basic)).status_code

    async def set_user(**values: Any) -> None:  # as the operator would, from another process
        async with world.db.transaction() as session:
            await session.execute(
                update(ApiUser).where(ApiUser.api_username == world.a.api_username).values(**values)
            )

    assert await pay() == 201  # known from now on
    await set_user(is_active=False)
    assert await pay() == 401
    await set_user(is_active=True)
    assert await pay() == 201
    await set_user(api_password_hash=crypto.hash_password("a-new-password-entirely"))
    assert await pay() == 401, "the old password no longer works"
    assert len(await world.collections()) == 2


async def test_callbacks_arriving_together_settle_each_collection_and_refuse_the_forged_one(
    world: World, mailbox: Mailbox
) -> None:
    references = [await world.queued(100 + n, NO_CALLBACK, mailbox) for n in range(6)]

    async def pushed() -> list[Any] | None:
        pushes = [world.sim.push_for(reference) for reference in references]
        collections = [await world.collection(reference) for reference in references]
        if all(p is not None for p in pushes) and all(c.provider_checkout_request_id for c in collections):
            return pushes
        return None

    pushes = await eventually(pushed, "the STK pushes")
    calls = [
        world.http.post(
            push.callback_url,
            json=success_callback(push.merchant_request_id, push.checkout_request_id, 100 + n),
        )
        for n, push in enumerate(pushes)
    ]
    forged = pushes[0].callback_url.rsplit("/", 1)[0] + "/forged-token-that-was-never-issued"
    calls.append(world.http.post(forged, json=success_callback("m", "c", 1)))
    first = success_callback(pushes[0].merchant_request_id, pushes[0].checkout_request_id, 100)
    calls.append(world.http.post(pushes[0].callback_url, json=first))  # a repeat
    # The right address with another request's ids: refused in the same batch as the others.
    calls.append(world.http.post(pushes[0].callback_url, json=success_callback("m", "c", 100)))
    replies = await asyncio.gather(*calls)
    assert [r.status_code for r in replies] == [200] * 6 + [404, 200, 409], [r.text for r in replies]

    for reference in references:
        assert (await world.collection(reference)).status == "SUCCESS"
    await mailbox.wait_for(6)
    assert mailbox.hits == 6, "each collection's merchant callback once"
    after = await world.balances()
    assert after.payments == (sum(100_00 + n * 100 for n in range(6)), 0)
    assert len(await world.journals(kind="collection")) == 6
    await world.verify_ledger()
