"""Requests and replies of the C2B routes (/api/v1/channels/{id}/register-c2b, /c2b) and of
payment requests (/api/v1/payment-requests)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BeforeValidator, ConfigDict, Field, StringConstraints

from malipo.http.schemas import Amount, CamelModel, Id, NoControlCharacters, plain_integer

CallbackUrl = Annotated[str, StringConstraints(max_length=2000, pattern=r"^https?://[\x21-\x7e]+$")]
# M-Pesa's BillRefNumber: at most 20 letters, digits and a few signs; "#" separates a wallet
# channel's id from the reference, so a reference holds none.
AccountReference = Annotated[
    str, StringConstraints(strip_whitespace=True, pattern=r"^[A-Za-z0-9][A-Za-z0-9 _./-]{0,19}$")
]
Description = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200), NoControlCharacters
]
Minutes = Annotated[int, BeforeValidator(plain_integer), Field(ge=1, le=129_600)]
Phone = Annotated[str, StringConstraints(strip_whitespace=True, min_length=9, max_length=20)]


class C2bRegisterIn(CamelModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"rule": "acceptAll", "responseType": "Completed"},
                {
                    "rule": "requireKnownReference",
                    "minAmount": "10",
                    "maxAmount": "70000",
                    "responseType": "Cancelled",
                    "callbackUrl": "https://shop.example.com/hooks/mpesa",
                },
            ]
        }
    )

    rule: Literal["acceptAll", "requireKnownReference"] = Field(
        default="acceptAll",
        description="`requireKnownReference`: only payments naming an open payment request's account "
        "reference are accepted (C2B00012 otherwise)",
    )
    min_amount: Amount | None = Field(default=None, description="Smaller payments are refused (C2B00013)")
    max_amount: Amount | None = Field(default=None, description="Larger payments are refused (C2B00013)")
    response_type: Literal["Completed", "Cancelled"] = Field(
        default="Completed", description="What M-Pesa does when malipo's validation does not answer in time"
    )
    callback_url: CallbackUrl | None = Field(
        default=None, description="Each C2B payment is posted here in Pay Hero's callback shape"
    )


class C2bOut(CamelModel):
    channel_id: int
    channel_type: str
    short_code: str = Field(description="The shortcode registered: yours, or the operator's for `wallet`")
    account_number_format: str = Field(
        description="What the payer types as the account number: `<channelId>#<reference>` on the "
        "operator's shortcode (wallet channel), your own reference on your paybill"
    )
    rule: str
    min_amount: str | None
    max_amount: str | None
    response_type: str
    callback_url: str | None
    registration_status: Literal["pending", "registered", "failed"]
    registration_reply: dict[str, Any] | None = Field(description="Daraja's answer to the registration")
    registered_at: datetime | None
    updated_at: datetime


class PaymentRequestIn(CamelModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "amount": "2500",
                    "accountReference": "INV-2031",
                    "expiresInMinutes": 1440,
                    "description": "Invoice 2031",
                    "callbackUrl": "https://shop.example.com/hooks/mpesa",
                },
                {
                    "amount": 900,
                    "accountReference": "ORDER77",
                    "expiresAt": "2030-01-31T12:00:00Z",
                    "channelId": 3,
                },
            ]
        }
    )

    amount: Amount
    account_reference: AccountReference = Field(
        description="What the payer types as the account number (on the operator's shortcode: "
        "`<channelId>#<accountReference>`); unique among your open requests"
    )
    expires_at: AwareDatetime | None = Field(
        default=None, description="When it expires (or expiresInMinutes)"
    )
    expires_in_minutes: Minutes | None = Field(default=None, description="Default 1440 (one day)")
    channel_id: Id | None = Field(
        default=None, description="Only payments to this channel count (default: any)"
    )
    description: Description | None = None
    callback_url: CallbackUrl | None = Field(
        default=None, description="Each payment of the request is posted here in Pay Hero's callback shape"
    )


class StkPushIn(CamelModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"phoneNumber": "0712345678"}]})

    phone_number: Phone = Field(description="The payer's M-Pesa number; asked for what is still owed")


class RequestPaymentOut(CamelModel):
    collection_id: uuid.UUID
    amount: str
    overpaid: str = Field(description="The part beyond what the request still owed")
    receipt: str | None
    created_at: datetime


class PaymentRequestOut(CamelModel):
    id: uuid.UUID
    mode: Literal["test", "live"]
    account_reference: str
    amount: str
    currency: str
    paid_amount: str
    overpaid_amount: str = Field(description="Paid beyond the amount, or after the request closed")
    overpaid: bool
    status: Literal["open", "paid", "cancelled", "expired"]
    channel_id: int | None
    description: str | None
    callback_url: str | None
    expires_at: datetime
    paid_at: datetime | None
    created_at: datetime
    updated_at: datetime
    payments: list[RequestPaymentOut]


class PaymentRequestPage(CamelModel):
    payment_requests: list[PaymentRequestOut]
    page: int
    page_size: int
    total: int


class StkPushOut(CamelModel):
    payment_request: PaymentRequestOut
    collection_reference: str = Field(description="The collection's reference (`/api/v2/transaction-status`)")
    checkout_request_id: str
    amount: str
    status: str
