"""Request and reply bodies of the disbursement routes (camelCase)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import Any, Literal

from pydantic import Field, StrictInt, StrictStr

from malipo.http.schemas import CamelModel


class BatchItemIn(CamelModel):
    """One payment of a batch. Types are checked with the request (a wrong type is a 422 naming
    the field); what the values mean — the number, the amount's limits, the bank — is checked per
    item, and an item that fails is listed under `rejected` while the others are kept."""

    destination: StrictStr | StrictInt = Field(
        description="A Kenyan mobile number (07…, 2547…, +2547…), or a bank account number",
        examples=["254712345678"],
    )
    amount: StrictInt | StrictStr = Field(description="Whole shillings, 10 to 250,000", examples=[1500])
    destination_type: Literal["mobile", "bank"] | None = Field(
        default=None, description="Absent: bank when bankCode is given, else mobile"
    )
    bank_code: StrictStr | None = Field(
        default=None,
        max_length=10,
        description="The bank's code (GET /api/v1/banks); bank only",
        examples=["01"],
    )
    narration: StrictStr | None = Field(default=None, max_length=140)
    reference: StrictStr | None = Field(default=None, max_length=100, description="Your own reference")


class BatchIn(CamelModel):
    batch_name: str = Field(min_length=1, max_length=100, description="A name for the batch, for people")
    items: list[BatchItemIn] = Field(min_length=1, description="The payments: each checked on its own")

    def item_dicts(self) -> Iterator[dict[str, Any]]:
        """The items as a file's rows are read: their JSON names, absent fields left out."""
        return (item.model_dump(by_alias=True, exclude_none=True) for item in self.items)

    model_config = {
        "json_schema_extra": {
            "examples": [
                {
                    "batchName": "December salaries",
                    "items": [
                        {"destination": "254712345678", "amount": 1500, "narration": "Salary"},
                        {"destination": "1234567890", "destinationType": "bank", "bankCode": "01",
                         "amount": 25000, "reference": "EMP-0042"},
                    ],
                }
            ]
        }
    }  # fmt: skip


class RejectedOut(CamelModel):
    row: int = Field(
        description="The item's place: 1 for a JSON body's first item; a file's own row (header = 1)"
    )
    field: str
    reason: str
    destination: str


class SubmitBatchResult(CamelModel):
    batch_id: uuid.UUID
    batch_name: str
    status: str = Field(
        description="Ready, or AwaitingApproval when the total is over the approval threshold"
    )
    item_count: int
    accepted_count: int
    rejected_count: int
    total_amount: str
    currency: str
    approval_required: bool
    item_ids: list[uuid.UUID] = Field(description="The accepted items' ids, in the order submitted")
    rejected: list[RejectedOut]


class ItemRef(CamelModel):
    item_id: uuid.UUID
    reason: str


class SkippedOut(CamelModel):
    item_id: uuid.UUID
    status: str
    reason: str


class ProcessResult(CamelModel):
    batch_id: uuid.UUID
    status: str
    processed: list[uuid.UUID] = Field(description="Items whose payout was made now (held and queued)")
    failed: list[ItemRef] = Field(description="Items that could not be paid now (e.g. the wallet ran short)")
    skipped: list[SkippedOut] = Field(description="Items not Pending (at most 1,000 listed)")
    skipped_count: int
    queued: int = Field(
        description="Pending items the worker is paying (a batch too large to pay in the request)"
    )


class RetryIn(CamelModel):
    batch_id: uuid.UUID
    item_ids: list[uuid.UUID] = Field(min_length=1, max_length=1000)

    model_config = {
        "json_schema_extra": {
            "examples": [
                {
                    "batchId": "0193a1b2-7c4d-7e8f-9a0b-1c2d3e4f5a6b",
                    "itemIds": ["0193a1b2-7c4d-7e8f-9a0b-1c2d3e4f5a6c"],
                }
            ]
        }
    }


class Counts(CamelModel):
    pending: int
    processing: int
    processed: int
    failed: int


class BatchOut(CamelModel):
    batch_id: uuid.UUID
    batch_name: str
    status: str = Field(description="AwaitingApproval, Ready, Processing or Completed")
    item_count: int
    rejected_count: int
    counts: Counts
    total_amount: str
    paid_amount: str
    fees: str
    currency: str
    source: str
    approval_required: bool
    approved_by: uuid.UUID | None
    approved_at: datetime | None
    created_at: datetime
    processing_started_at: datetime | None


class BatchPage(CamelModel):
    page: int
    page_size: int
    total: int
    batches: list[BatchOut]


class ItemOut(CamelModel):
    item_id: uuid.UUID
    batch_id: uuid.UUID
    row: int
    destination_type: str
    destination: str
    bank_code: str | None
    amount: str
    currency: str
    narration: str | None
    reference: str | None
    status: str = Field(description="Pending, Processing, Processed or Failed")
    attempts: int
    fee: str | None
    paid_amount: str | None
    provider_reference: str | None
    result_code: str | None
    result_desc: str | None
    payout_id: uuid.UUID | None
    completed_at: datetime | None
    updated_at: datetime


class ItemPage(CamelModel):
    batch_id: uuid.UUID | None = Field(
        description="The batch (null in the failed-items report, which spans batches)"
    )
    page: int
    page_size: int
    total: int
    items: list[ItemOut]


class AttemptOut(CamelModel):
    attempt_id: uuid.UUID
    batch_id: uuid.UUID
    item_id: uuid.UUID
    number: int
    destination: str
    amount: str
    status: str
    payout_id: uuid.UUID | None
    result_code: str | None
    result_desc: str | None
    created_at: datetime
    completed_at: datetime | None


class AttemptPage(CamelModel):
    page: int
    page_size: int
    total: int
    attempts: list[AttemptOut]


class ReconciliationTotals(CamelModel):
    items: int
    requested: str
    paid: str
    fees: str
    ledger_paid: str = Field(
        description="What the ledger moved out of the payments wallet for the batch's payouts"
    )
    ledger_fees: str = Field(description="The batch's payout fees the ledger booked as fee revenue")
    ties: bool = Field(description="paid = ledgerPaid and fees = ledgerFees")


class ReconciliationLine(CamelModel):
    item_id: uuid.UUID
    row: int
    destination: str
    requested: str
    paid: str
    fee: str
    provider_reference: str | None
    state: str
    attempts: int


class ReconciliationOut(CamelModel):
    batch_id: uuid.UUID
    batch_name: str
    status: str
    currency: str
    totals: ReconciliationTotals
    counts: Counts
    items: list[ReconciliationLine]


class ThresholdIn(CamelModel):
    approval_threshold: StrictInt | None = Field(
        ge=0, le=10**12, description="Whole shillings: a batch totalling more waits for approval; null: never"
    )

    model_config = {"json_schema_extra": {"examples": [{"approvalThreshold": 500000}]}}


class ThresholdOut(CamelModel):
    client_id: uuid.UUID
    approval_threshold: int | None
    source: str = Field(description="client (set for this client) or default (the gateway's setting)")
