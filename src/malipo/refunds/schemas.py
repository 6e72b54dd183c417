"""Request and reply bodies of the refund routes (camelCase)."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from malipo.http.schemas import CamelModel


class RefundIn(CamelModel):
    amount: str | int | None = Field(
        default=None,
        description="Shillings to refund (whole shillings); omitted: all that is left to refund",
        examples=["50"],
    )
    reason: str = Field(min_length=2, max_length=100, description="Why (sent to M-Pesa as the Remarks)")

    model_config = {"json_schema_extra": {"examples": [{"amount": "50", "reason": "Order cancelled"}]}}


class RefundOut(CamelModel):
    id: str
    reference: str
    collection_id: str
    collection_reference: str
    amount: str
    currency: str
    reason: str
    status: str = Field(description="pending, completed or failed")
    mpesa_receipt: str | None
    reversal_receipt: str | None
    conversation_id: str | None
    originator_conversation_id: str | None
    result_code: str | None
    result_desc: str | None
    created_at: datetime
    completed_at: datetime | None


class RefundList(CamelModel):
    collection_id: str
    collection_reference: str
    collected: str
    refunded: str = Field(description="Pending and completed refunds together")
    refundable: str
    currency: str
    refunds: list[RefundOut]
