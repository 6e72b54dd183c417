"""The rails' balances: the periodic worker job asks every rail (Daraja answers at its balance
callback over HTTP, the mounted Airtel simulator in its reply), the answers are kept as history,
and operator staff read the newest at /api/v1/operator/rail-balances; merchants cannot."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import select

from malipo.core.clock import SystemClock
from malipo.railbalances import service
from malipo.railbalances.models import RailBalance
from malipo.worker.models import Job
from tests.fixtures.world import PAYS, StartMalipo, World, eventually
from tests.reviews.helpers import call, portal_user


async def _rows(world: World) -> list[RailBalance]:
    async with world.db.transaction() as session:
        return list((await session.scalars(select(RailBalance).order_by(RailBalance.asked_at))).all())


async def _answered(world: World, count: int) -> list[RailBalance]:
    async def enough() -> list[RailBalance] | None:
        rows = [r for r in await _rows(world) if r.status != service.ASKED]
        return rows if len(rows) >= count else None

    return await eventually(enough, f"{count} balance answers")  # type: ignore[no-any-return]


def _daraja(balances: list[dict[str, Any]], mode: str = "test") -> dict[str, Any]:
    [found] = [b for b in balances if (b["rail"], b["mode"], b["party"]) == ("daraja", mode, "174379")]
    return found


async def test_the_periodic_job_asks_every_rail_and_keeps_asking(start_malipo: StartMalipo) -> None:
    world = await start_malipo(rail_balance_interval_seconds=0.3)
    # Two rounds: test and live, Daraja's shortcode and Airtel's account each time.
    rows = await _answered(world, 8)
    assert {(r.mode, r.rail, r.party) for r in rows} >= {
        ("test", "daraja", "174379"), ("live", "daraja", "174379"),
        ("test", "airtel", "disbursement"), ("live", "airtel", "disbursement"),
    }  # fmt: skip
    daraja = next(r for r in rows if r.rail == "daraja" and r.status == service.ANSWERED)
    names = [a["name"] for a in daraja.accounts or []]
    assert names == [
        "Working Account", "Float Account", "Utility Account", "Charges Paid Account",
        "Organization Settlement Account",
    ]  # fmt: skip
    charges = next(a for a in daraja.accounts or [] if a["name"] == "Charges Paid Account")
    assert charges["amounts"] == [-154000, -154000, 0, 0], "by position, in cents, negative kept"
    assert daraja.conversation_id is not None
    async with world.db.transaction() as session:
        waiting = (await session.scalars(select(Job).where(Job.kind == service.REFRESH_JOB))).all()
    assert any(job.status == "pending" for job in waiting), "the next run is queued"


async def test_operators_see_the_newest_balance_and_it_moves_with_collections(world: World) -> None:
    operator = await portal_user(world, "CompanyAdmin")
    async with httpx.AsyncClient(timeout=30) as http:
        await service.ask_all(world.db, world.settings, http, SystemClock())
    await _answered(world, 4)
    first = await call(world, "GET", "/api/v1/operator/rail-balances", operator)
    assert first.status_code == 200, first.text
    before = _daraja(first.json()["balances"])
    assert before["status"] == "answered"
    utility = next(a for a in before["accounts"] if a["name"] == "Utility Account")

    reference = await world.queued(250, PAYS)
    assert (await world.final_status(reference))["status"] == "SUCCESS"
    async with httpx.AsyncClient(timeout=30) as http:
        await service.ask_all(world.db, world.settings, http, SystemClock())
    await _answered(world, 8)
    second = await call(world, "GET", "/api/v1/operator/rail-balances", operator)
    after = _daraja(second.json()["balances"])
    moved = next(a for a in after["accounts"] if a["name"] == "Utility Account")
    assert float(moved["amounts"][0]) - float(utility["amounts"][0]) == 250.0
    assert after["askedAt"] > before["askedAt"]
    airtel = [b for b in second.json()["balances"] if b["rail"] == "airtel"]
    assert airtel
    assert all(b["status"] == "answered" for b in airtel)
    assert len(await _rows(world)) == 8, "every answer is kept"


async def test_merchants_cannot_read_the_rail_balances(world: World) -> None:
    key = await world.http.get("/api/v1/operator/rail-balances", headers=world.a.headers)
    assert key.status_code == 403, key.text
    admin = await portal_user(world, "ClientAdmin", world.a.client_id)
    portal = await call(world, "GET", "/api/v1/operator/rail-balances", admin)
    assert portal.status_code == 403, portal.text


async def test_a_balance_answer_for_another_query_changes_nothing(world: World) -> None:
    async with httpx.AsyncClient(timeout=30) as http:
        await service.ask_all(world.db, world.settings, http, SystemClock())
    [row] = [r for r in await _answered(world, 4) if r.rail == "daraja" and r.mode == "test"]
    token = service.callback_token(world.settings, row.id)
    forged = {
        "Result": {
            "ResultType": "0", "ResultCode": "0", "ResultDesc": "ok", "OriginatorConversationID": "x-1",
            "ConversationID": "AG_20200206_00005e091a8ec6b9eac5", "TransactionID": "OA90000000",
            "ResultParameters": {"ResultParameter": [
                {"Key": "AccountBalance", "Value": "Working Account|KES|1.00|1.00|0.00|0.00"},
            ]},
        }
    }  # fmt: skip
    reply = await world.http.post(f"/callbacks/daraja/{token}/balance", json=forged)
    assert reply.status_code == 409, reply.text
    async with world.db.transaction() as session:
        again = await session.get(RailBalance, row.id)
    assert again is not None
    assert again.accounts == row.accounts
