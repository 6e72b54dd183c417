"""Requests and replies of the native WhatsApp routes (/api/v1/whatsapp)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import ConfigDict, Field, StringConstraints, model_validator

from malipo.http.schemas import CamelModel
from malipo.sms.schemas import Rejection, SmsState, StatusCounts


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
