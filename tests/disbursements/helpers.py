"""What the disbursement tests share: submitting, processing and waiting for a batch, and the
ledger figures they check."""

from __future__ import annotations

import io
import uuid
from typing import Any

import httpx
from sqlalchemy import select

from malipo.core.clock import SystemClock
from malipo.disbursements.models import DisbursementBatch, DisbursementItem
from malipo.identity.models import Client
from tests.factories import Merchant, make_api_user
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


# -- files: CSV bodies, uploads, workbooks -------------------------------------------------

CSV_HEADER = "destination,amount,destinationType,bankCode,narration,reference"


def csv_text(*lines: str, newline: str = "\r\n", bom: bool = False, header: str = CSV_HEADER) -> bytes:
    """A CSV file: ``header`` then ``lines``, each ended by ``newline``, UTF-8 (a BOM first if asked)."""
    text = "".join(f"{line}{newline}" for line in (header, *lines))
    return ("\ufeff" if bom else "").encode() + text.encode()


async def submit_csv(
    world: World,
    body: bytes,
    name: str | None = "CSV payroll",
    content_type: str = "text/csv",
    headers: Any = None,
) -> httpx.Response:
    params = {"batchName": name} if name is not None else {}
    sent = dict(headers or world.a.headers) | {"Content-Type": content_type}
    return await world.http.post(f"{BATCHES}/csv", params=params, content=body, headers=sent)


async def upload(
    world: World,
    file: tuple[str, bytes, str] | None,
    name: str | None = "Uploaded payroll",
    headers: Any = None,
) -> httpx.Response:
    """A multipart form: ``file`` (filename, content, media type) and ``batchName``, either left
    out when None."""
    files = {"file": file} if file is not None else {"other": ("x.txt", b"x", "text/plain")}
    data = {"batchName": name} if name is not None else {}
    return await world.http.post(
        f"{BATCHES}/upload", files=files, data=data, headers=headers or world.a.headers
    )


def workbook(rows: list[list[Any]]) -> bytes:
    """An .xlsx workbook whose first sheet holds ``rows`` (numbers stay numeric cells)."""
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    assert sheet is not None
    for row in rows:
        sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


async def batch_count(world: World) -> int:
    return await world.count(DisbursementBatch)


async def second_api_user(world: World, tag: str, role: str = "Developer") -> Merchant:
    """Another API user of merchant A (its own sandbox key), with ``role``."""
    async with world.db.transaction() as session:
        client = await session.get(Client, world.a.client_id)
        assert client is not None
        return await make_api_user(session, client, tag, now=SystemClock().now(), live_key=False, role=role)
