"""Pay Hero callers known to the process (``RecentCallers``) are checked again by the group
commit's batch; and concurrent requests really are written together, many to a batch."""

from __future__ import annotations

import asyncio
from collections import Counter

from sqlalchemy import update

from malipo.identity.models import Client, ClientStatus
from tests.fixtures.world import FINAL, PAYS, World, eventually


async def _pay(world: World) -> tuple[int, dict[str, object]]:
    body = {"amount": 100, "phone_number": PAYS}
    reply = await world.http.post("/api/v2/payments", json=body, headers=world.a.basic)
    return reply.status_code, reply.json()


async def _settled(world: World, reference: str) -> str:
    """Wait until the live collection ``reference`` is final; its status."""

    async def final() -> str | None:
        params = {"reference": reference}
        reply = await world.http.get("/api/v2/transaction-status", params=params, headers=world.a.basic)
        assert reply.status_code == 200, reply.text
        status = str(reply.json()["status"])
        return status if status in FINAL else None

    return str(await eventually(final, f"{reference} to reach SUCCESS or FAILED"))


async def _set_client_status(world: World, status: ClientStatus) -> None:
    async with world.db.transaction() as session:  # as the operator would, from another process
        await session.execute(update(Client).where(Client.id == world.a.client_id).values(status=status))


async def test_a_known_caller_whose_client_is_deactivated_is_refused_by_its_next_request(
    world: World,
) -> None:
    status, body = await _pay(world)
    assert status == 201, body  # known from now on: its next request reads nothing first
    # Its collection settles (the fee hold is captured) on its own time: let it, so that the
    # balances compared below move only if a refused request moved them.
    assert await _settled(world, str(body["reference"])) == "SUCCESS"
    live_before = await world.balances(mode="live")
    await _set_client_status(world, ClientStatus.DEACTIVATED)

    status, body = await _pay(world)
    assert status == 403, body
    assert body["error_code"] == "permission_denied"
    assert "deactivated" in str(body["error_message"])
    assert (await _pay(world))[0] == 403, "and the one after, checked from scratch"
    assert len(await world.collections()) == 1
    assert await world.balances(mode="live") == live_before

    await _set_client_status(world, ClientStatus.ACTIVE)
    assert (await _pay(world))[0] == 201


async def test_concurrent_payments_are_answered_by_batches_of_more_than_one(world: World) -> None:
    assert (await _pay(world))[0] == 201  # the caller is known: the rest wait on the batch alone
    replies = await asyncio.gather(*(_pay(world) for _ in range(16)))
    assert [status for status, _body in replies] == [201] * 16, replies
    references = {body["reference"] for _status, body in replies}
    assert len(references) == 16, "each request its own collection"

    # A batch stamps its collections with the one moment it was written at: collections sharing
    # a created_at were stored by one transaction.
    stored = [c for c in await world.collections() if c.reference in references]
    per_batch = Counter(c.created_at for c in stored)
    assert max(per_batch.values()) > 1, per_batch
    assert len(per_batch) < 16
    assert sum(per_batch.values()) == 16
    await world.verify_ledger()
