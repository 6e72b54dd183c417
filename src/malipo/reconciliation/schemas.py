"""The reconciliation report and a resolution, as the native API shows and takes them."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Annotated, Any

from pydantic import ConfigDict, Field, StringConstraints

from malipo.core.money import Money
from malipo.http.schemas import CamelModel
from malipo.reconciliation.models import ReconciliationItem, ReconciliationRun, Resolution


class ItemOut(CamelModel):
    id: uuid.UUID
    kind: str  # matched, missing_in_malipo, missing_at_rail, amount_mismatch
    status: str  # matched, open, pending, resolved
    rail: str
    currency: str
    receipt: str | None
    rail_amount: str | None  # major units, a decimal string
    malipo_amount: str | None
    party: str | None
    bill_reference: str | None
    rail_time: datetime | None
    collection_id: uuid.UUID | None
    client_id: uuid.UUID | None
    detail: str
    suspense_journal_id: uuid.UUID | None
    resolution: str | None
    resolution_note: str | None
    resolution_journal_id: uuid.UUID | None
    resolved_by: uuid.UUID | None
    resolved_at: datetime | None


class ReportOut(CamelModel):
    date: date
    mode: str
    status: str  # complete, or incomplete (see notes)
    runs: int
    notes: dict[str, str]
    # Per currency, minor units: railTotal, malipoTotal, notOnAStatement, each kind's count and
    # amounts, and ledger {clearingIn, expected, ties}.
    totals: dict[str, Any]
    items: list[ItemOut]
    updated_at: datetime


class ResolveIn(CamelModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "action": "attach",
                    "clientId": "0190f6c2-7a51-7cc1-9d4e-6a1f0c2b9e11",
                    "note": "Paid to the paybill with a typo in the account",
                },
                {"action": "write_off", "note": "Agreed with Safaricom's statement"},
            ]
        }
    )

    action: Resolution = Field(description="attach, write_off or refund")
    client_id: uuid.UUID | None = Field(
        default=None, description="attach: the client whose payments wallet receives the money"
    )
    note: Annotated[str, StringConstraints(strip_whitespace=True, max_length=500)] | None = None


def _money(amount: int | None, currency: str) -> str | None:
    return None if amount is None else Money(amount, currency).format()


def item_out(item: ReconciliationItem) -> ItemOut:
    c = item.currency
    return ItemOut(
        id=item.id, kind=item.kind, status=item.status, rail=item.rail, currency=c, receipt=item.receipt,
        rail_amount=_money(item.rail_amount, c), malipo_amount=_money(item.malipo_amount, c),
        party=item.party, bill_reference=item.bill_reference, rail_time=item.rail_time,
        collection_id=item.collection_id, client_id=item.client_id, detail=item.detail,
        suspense_journal_id=item.suspense_journal_id, resolution=item.resolution,
        resolution_note=item.resolution_note, resolution_journal_id=item.resolution_journal_id,
        resolved_by=item.resolved_by, resolved_at=item.resolved_at,
    )  # fmt: skip


def report_out(run: ReconciliationRun, items: list[ReconciliationItem]) -> ReportOut:
    return ReportOut(
        date=run.day, mode=run.mode, status=run.status, runs=run.runs,
        notes={str(k): str(v) for k, v in run.notes.items()}, totals=run.totals,
        items=[item_out(i) for i in items], updated_at=run.updated_at,
    )  # fmt: skip
