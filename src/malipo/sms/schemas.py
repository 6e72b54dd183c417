"""Requests and replies of the native SMS routes (/api/v1/sms); the bulk replies' shared parts
(rejections, counts by status) that the WhatsApp routes reuse."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import Query
from pydantic import ConfigDict, Field, StringConstraints

from malipo.http.schemas import CamelModel, MessageText

SmsText = Annotated[
    MessageText,
    Field(
        min_length=1,
        max_length=320,
        description="1 to 320 characters; line breaks and tabs, no other control characters",
    ),
]
PhoneNumber = Annotated[
    str,
    Field(
        min_length=1,
        max_length=32,
        description="E.164 (+254712345678), international without + (254712345678) or local "
        "(0712345678, read in your country); digits may be grouped with spaces or '-', nothing else",
        examples=["0712345678"],
    ),
]
SenderId = Annotated[
    str,
    StringConstraints(pattern=r"^[A-Za-z0-9]{1,11}$"),
    Field(description="1 to 11 letters and digits, registered with the SMS provider", examples=["MALIPO"]),
]
SmsState = Literal["queued", "sent", "delivered", "failed"]
# A bulk batch's messages a page at a time (SMS and WhatsApp batches alike).
Page = Annotated[int, Query(ge=1, le=100_000, description="1-based page of the batch's messages")]
PageSize = Annotated[int, Query(alias="pageSize", ge=1, le=1000)]


class SmsIn(CamelModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"phoneNumber": "0712345678", "message": "Your order 1042 is ready for pickup at Moi Avenue."}
            ]
        }
    )

    phone_number: PhoneNumber
    message: SmsText


class SmsWithSenderIn(SmsIn):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "phoneNumber": "0712345678",
                    "message": "Your order 1042 is ready for pickup at Moi Avenue.",
                    "senderId": "DUKALAMAMA",
                }
            ]
        }
    )

    sender_id: SenderId


class SmsBulkIn(CamelModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "phoneNumbers": ["0712345678", "254722123456", "+254733123456"],
                    "message": "Weekend offer: 10% off all unga until Sunday.",
                    "senderId": "DUKALAMAMA",
                }
            ]
        }
    )

    phone_numbers: list[Annotated[str, Field(max_length=64)]] = Field(
        min_length=1, max_length=10_000, description="Up to 10,000 numbers; invalid ones are rejected alone"
    )
    message: SmsText
    sender_id: SenderId | None = None


class SmsOut(CamelModel):
    id: uuid.UUID
    phone_number: str = Field(description="E.164")
    sender_id: str | None
    message: str
    status: SmsState
    gateway_message_id: str | None = Field(description="The provider's id (Africa's Talking ATXid_…)")
    gateway_status: str | None = Field(description="The provider's own word for the latest state")
    failure_reason: str | None
    segments: int
    encoding: Literal["GSM-7", "UCS-2"]
    cost: str = Field(description="What this message cost, debited from the service wallet")
    currency: str
    attempts: int = Field(description="Provider requests made for this message so far")
    batch_id: uuid.UUID | None
    created_at: datetime
    sent_at: datetime | None
    delivered_at: datetime | None


class Rejection(CamelModel):
    index: int = Field(description="Position in the request's list (0-based), or the CSV row number")
    phone_number: str = Field(description="As sent")
    reason: str


def rejections_out(rejected: Sequence[Any]) -> list[Rejection]:
    """A bulk reply's ``rejected`` list from the service's rejections (SMS and WhatsApp alike)."""
    return [Rejection(index=r.index, phone_number=r.phone_number, reason=r.reason) for r in rejected]


class BulkMessage(CamelModel):
    id: uuid.UUID
    phone_number: str


class SmsBulkOut(CamelModel):
    batch_id: uuid.UUID
    status: Literal["queued"]
    accepted: int
    rejected: list[Rejection]
    segments: int = Field(description="Segments per message")
    cost: str = Field(description="Total debited from the service wallet")
    currency: str
    messages: list[BulkMessage]


class StatusCounts(CamelModel):
    queued: int = 0
    sent: int = 0
    delivered: int = 0
    failed: int = 0


class BatchMessageOut(CamelModel):
    id: uuid.UUID
    phone_number: str
    status: SmsState
    gateway_message_id: str | None
    failure_reason: str | None
    attempts: int


class SmsBatchOut(CamelModel):
    id: uuid.UUID
    accepted: int
    rejected: int
    segments: int
    cost: str
    currency: str
    counts: StatusCounts
    created_at: datetime
    page: int
    page_size: int
    messages: list[BatchMessageOut]
