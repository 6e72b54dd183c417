"""Requests and replies of the native messaging routes (/api/v1/sms, /api/v1/whatsapp)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import ConfigDict, Field, StringConstraints, model_validator

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


# -- WhatsApp --------------------------------------------------------------------------------------


class WhatsAppSessionIn(CamelModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"name": "shop", "backend": "simulator"},
                {
                    "name": "shop",
                    "backend": "cloud",
                    "phoneNumberId": "106540352242922",
                    "accessToken": "EAAG0ZBZCx4ZBZAwBAKZCdemo",
                },
            ]
        }
    )

    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)] = Field(
        description="The name you send as `session` (Pay Hero's field)"
    )
    backend: Literal["cloud", "simulator"] = Field(
        default="simulator", description="Meta's WhatsApp Cloud API, or the built-in simulator"
    )
    phone_number_id: Annotated[str, StringConstraints(pattern=r"^[0-9]{1,64}$")] | None = Field(
        default=None, description="Cloud API: the business phone number's id"
    )
    access_token: Annotated[str, Field(min_length=1, max_length=2000)] | None = Field(
        default=None, description="Cloud API: a system-user access token (stored encrypted, never shown)"
    )

    @model_validator(mode="after")
    def _cloud_needs_credentials(self) -> WhatsAppSessionIn:
        if self.backend == "cloud" and (not self.phone_number_id or not self.access_token):
            raise ValueError("a cloud session needs phoneNumberId and accessToken")
        return self


class WhatsAppSessionOut(CamelModel):
    id: uuid.UUID
    name: str
    backend: Literal["cloud", "simulator"]
    phone_number_id: str | None
    webhook_url: str = Field(
        description="Cloud sessions: set it as the app's webhook URL in Meta's dashboard (the "
        "verify token is its last path segment)"
    )
    created_at: datetime


class WhatsAppBulkOut(CamelModel):
    batch_id: uuid.UUID
    status: Literal["queued"]
    accepted: int
    rejected: list[Rejection]


class WhatsAppBatchMessageOut(CamelModel):
    id: uuid.UUID
    phone_number: str
    status: SmsState
    gateway_message_id: str | None
    error: str | None
    attempts: int


class WhatsAppBatchOut(CamelModel):
    id: uuid.UUID
    session: str
    message_type: Literal["text", "image", "document"]
    media_url: str | None = Field(description="The image's or document's URL; null for text")
    accepted: int
    rejected: int
    counts: StatusCounts
    created_at: datetime
    page: int
    page_size: int
    messages: list[WhatsAppBatchMessageOut]
