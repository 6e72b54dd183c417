"""Requests and replies of the checkout routes (/api/v1/checkout/sessions, /api/v1/payment-links)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from fastapi import Path
from pydantic import BeforeValidator, ConfigDict, Field, StrictBool, StringConstraints

from malipo.cards.schemas import Currency, OrderId, ReturnUrl
from malipo.http.schemas import Amount, CamelModel, Id, NoControlCharacters, plain_integer

CallbackUrl = Annotated[str, StringConstraints(max_length=2000, pattern=r"^https?://[\x21-\x7e]+$")]
Description = Annotated[str, NoControlCharacters, StringConstraints(min_length=1, max_length=200)]
Title = Annotated[
    str, NoControlCharacters, StringConstraints(min_length=1, max_length=100, strip_whitespace=True)
]
LongDescription = Annotated[str, NoControlCharacters, StringConstraints(min_length=1, max_length=500)]
Slug = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]{1,38}[a-z0-9]$")]
ChannelId = Id
SessionIdPath = Annotated[str, Path(pattern=r"^cs_[a-z0-9]{8,37}$", description="`cs_…`")]
Minutes = Annotated[int, BeforeValidator(plain_integer), Field(ge=5, le=1440)]


class SessionIn(CamelModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "amount": "1500",
                    "currency": "KES",
                    "returnUrl": "https://shop.example.com/orders/ORD-2031/paid",
                    "orderId": "ORD-2031",
                    "description": "2 kg Kenyan AA coffee",
                    "callbackUrl": "https://shop.example.com/hooks/malipo",
                }
            ]
        }
    )

    amount: Amount
    currency: Currency
    return_url: ReturnUrl | None = Field(
        default=None,
        description="Where the payer goes back to after paying, with `checkoutSessionId` and `status` "
        "added to its query",
    )
    order_id: OrderId | None = None
    description: Description | None = Field(default=None, description="Shown to the payer on the page")
    callback_url: CallbackUrl | None = Field(
        default=None, description="Gets `checkout.session.completed` and `checkout.session.expired`"
    )
    channel_id: ChannelId | None = Field(
        default=None,
        description="An M-Pesa payment is made to this channel of yours (default: the payments wallet)",
    )
    expires_in_minutes: Minutes | None = Field(default=None, description="5 to 1440; default 30")


class SessionOut(CamelModel):
    session_id: str = Field(description="`cs_…`: the hosted page's only credential; keep it to yourself")
    url: str = Field(description="The hosted page to send the payer to")
    status: str = Field(description="open, pending (a payment in progress), completed or expired")
    amount: str
    currency: str
    order_id: str | None
    description: str | None
    return_url: str | None
    methods: list[str] = Field(description="How the payer can pay: mpesa (whole KES only) and card")
    method: str | None = Field(description="mpesa or card: the attempt in progress, or the one that paid")
    attempts: int
    payment_reference: str | None = Field(description="The collection's or card authorisation's reference")
    receipt: str | None = Field(description="The M-Pesa receipt, or the card's authorisation code")
    last_error: str | None = Field(description="Why the last attempt did not pay, as the payer was told")
    link_id: uuid.UUID | None
    created_at: datetime
    expires_at: datetime
    completed_at: datetime | None


class SessionPage(CamelModel):
    page: int
    page_size: int
    total: int
    items: list[SessionOut]


class LinkIn(CamelModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"title": "Mama Mboga groceries", "amount": "250", "description": "A week's vegetables"},
                {
                    "title": "Donate to the school fund",
                    "minAmount": "50",
                    "maxAmount": "50000",
                    "slug": "school-fund",
                },
            ]
        }
    )

    title: Title
    amount: Amount | None = Field(
        default=None, description="Fixed, in whole shillings; leave out to let the payer choose"
    )
    min_amount: Amount | None = Field(default=None, description="The payer's smallest amount (default 1)")
    max_amount: Amount | None = Field(
        default=None, description="The payer's largest amount (default 250,000)"
    )
    description: LongDescription | None = None
    slug: Slug | None = Field(
        default=None, description="The page's address, /pay/{slug}: 3 to 40 of a-z, 0-9 and -"
    )
    channel_id: ChannelId | None = None
    callback_url: CallbackUrl | None = Field(
        default=None, description="Gets each payment's checkout.session.* events"
    )
    success_url: ReturnUrl | None = Field(default=None, description="Where the payer goes after paying")


class LinkActiveIn(CamelModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"isActive": False}]})

    is_active: StrictBool


class LinkOut(CamelModel):
    link_id: uuid.UUID
    slug: str
    url: str = Field(description="The public page")
    button_snippet: str = Field(description="Paste into your page for a Pay button that opens the link")
    title: str
    description: str | None
    amount: str | None
    min_amount: str
    max_amount: str
    currency: str
    channel_id: int | None
    success_url: str | None
    is_active: StrictBool
    payments: int = Field(description="Completed payments")
    total_paid: str
    created_at: datetime
