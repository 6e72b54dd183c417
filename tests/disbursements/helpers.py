"""What the disbursement tests share: submitting, processing and waiting for a batch, and the
ledger figures they check."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from sqlalchemy import select

from malipo.disbursements.models import DisbursementItem
from tests.fixtures.world import World, eventually

BATCHES = "/api/v1/disbursements/batches"
PAID = "254711222333"
PAID_TOO = "254722000111"
INITIATOR_INVALID = "254700000011"  # the simulator fails B2C to it: 2001
KCB = "01"
ACCOUNT = "1234567890"
FEE = 15_00  # the default payout fee, KES 15.00


def mobile(destination: str, amount: int, **extra: Any) -> dict[str, Any]:
    return {"destination": destination, "amount": amount, **extra}


def bank(account: str, amount: int, code: str = KCB, **extra: Any) -> dict[str, Any]:
    return {"destination": account, "amount": amount, "destinationType": "bank", "bankCode": code, **extra}


async def submit(
    world: World, items: list[dict[str, Any]], name: str = "Payroll", **kw: Any
) -> httpx.Response:
    headers = kw.pop("headers", world.a.headers)
    return await world.http.post(BATCHES, json={"batchName": name, "items": items}, headers=headers)


async def process(world: World, batch_id: str, key: str | None = None, headers: Any = None) -> httpx.Response:
    headers = dict(headers or world.a.headers)
    headers["Idempotency-Key"] = key or f"process-{uuid.uuid4()}"
    return await world.http.post(f"{BATCHES}/{batch_id}/process", headers=headers)


async def batch(world: World, batch_id: str, headers: Any = None) -> dict[str, Any]:
    reply = await world.http.get(f"{BATCHES}/{batch_id}", headers=headers or world.a.headers)
    assert reply.status_code == 200, reply.text
    body: dict[str, Any] = reply.json()
    return body


async def settled(world: World, batch_id: str, timeout: float = 30.0) -> dict[str, Any]:
    """The batch once no item is Pending or Processing."""

    async def done() -> dict[str, Any] | None:
        found = await batch(world, batch_id)
        return found if found["counts"]["pending"] + found["counts"]["processing"] == 0 else None

    found: dict[str, Any] = await eventually(done, f"batch {batch_id} to settle", timeout)
    return found


async def items(world: World, batch_id: str) -> list[DisbursementItem]:
    async with world.db.transaction() as session:
        rows = await session.scalars(
            select(DisbursementItem)
            .where(DisbursementItem.batch_id == uuid.UUID(batch_id))
            .order_by(DisbursementItem.row)
        )
        return list(rows)
