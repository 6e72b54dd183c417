"""Requests and replies of the card routes (/api/v1/cards).

Amounts arrive as JSON numbers or decimal strings in the authorisation's currency, read by
``Money.parse`` in the service; they leave as decimal strings next to their currency. A card is
shown only as brand, BIN and last 4.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import BeforeValidator, ConfigDict, Field, StringConstraints

from malipo.http.schemas import Amount, CamelModel, plain_integer

CardNumber = Annotated[
    str,
    StringConstraints(min_length=12, max_length=23, pattern=r"^[0-9][0-9 -]*[0-9]$"),
    Field(description="The card number (PAN), 12 to 19 digits; spaces and dashes between digits are ignored"),
]
Month = Annotated[int, BeforeValidator(plain_integer), Field(ge=1, le=12)]
Year = Annotated[int, BeforeValidator(plain_integer), Field(ge=2000, le=2100)]
Cvv = Annotated[str, StringConstraints(min_length=3, max_length=4, pattern=r"^[0-9]{3,4}$")]
Token = Annotated[str, StringConstraints(min_length=5, max_length=40, pattern=r"^tok_[a-z0-9]+$")]
Currency = Annotated[str, StringConstraints(min_length=3, max_length=3, pattern=r"^[A-Za-z]{3}$")]
OrderId = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:/-]+$")]
ReturnUrl = Annotated[str, StringConstraints(max_length=400, pattern=r"^https?://[\x21-\x7e]+$")]
PaRes = Annotated[str, StringConstraints(min_length=1, max_length=4000, pattern=r"^[A-Za-z0-9._=-]+$")]


class TokenizeIn(CamelModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"cardNumber": "4242424242424242", "expiryMonth": 12, "expiryYear": 2030, "cvv": "123"}
            ]
        }
    )

    card_number: CardNumber
    expiry_month: Month
    expiry_year: Year = Field(description="Four digits; with the month, not in the past")
    cvv: Cvv = Field(
        description="3 digits (4 for American Express); kept in memory only, until the first authorization"
    )

    def __repr__(self) -> str:
        return "TokenizeIn(…)"


class CardOut(CamelModel):
    brand: str
    bin: str = Field(description="The first 6 digits")
    last4: str


class TokenOut(CamelModel):
    token: str
    card: CardOut
    expiry_month: int
    expiry_year: int
    cvv_on_file: bool = Field(
        description="Whether the CVV is held (in memory, never on disk) for the next authorization"
    )
    fingerprint: str = Field(description="The same for the same card tokenised again by your account")
    same_card_as: str | None = Field(description="Your first token of this same card, if this is not it")
    created_at: datetime


class AuthorizeIn(CamelModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "token": "tok_3kq9z1m2x8v7c6b5n4a0p2r1",
                    "amount": "1250.00",
                    "currency": "KES",
                    "orderId": "ORD-2031",
                    "returnUrl": "https://shop.example.com/checkout/return",
                }
            ]
        }
    )

    token: Token
    amount: Amount
    currency: Currency
    order_id: OrderId | None = None
    return_url: ReturnUrl | None = Field(
        default=None,
        description="Where the 3-D Secure page sends the payer back (with `paRes` and `reference` in"
        " the query)",
    )


class VerifyIn(CamelModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"authorizationId": "01a25099-901c-7bb4-b5c8-236a076834af", "paRes": "eyJhdiI6.fHg"}]
        }
    )

    authorization_id: uuid.UUID
    pa_res: PaRes = Field(description="The `paRes` the 3-D Secure page added to your return URL")


class CaptureIn(CamelModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"authorizationId": "01a25099-901c-7bb4-b5c8-236a076834af", "amount": "1000.00"}]
        }
    )

    authorization_id: uuid.UUID
    amount: Amount


class VoidIn(CamelModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"authorizationId": "01a25099-901c-7bb4-b5c8-236a076834af"}]}
    )

    authorization_id: uuid.UUID


class RefundIn(CaptureIn):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"authorizationId": "01a25099-901c-7bb4-b5c8-236a076834af", "amount": "400.00"}]
        }
    )


class ThreeDsOut(CamelModel):
    redirect_url: str | None = Field(description="pending_3ds: send the payer's browser here")
    trans_id: str | None
    trans_status: str | None = Field(description="EMV 3-D Secure: Y, A, N, U, R, C or I")
    eci: str | None


class AuthorizationOut(CamelModel):
    authorization_id: uuid.UUID
    reference: str
    order_id: str | None
    status: str = Field(
        description="authorizing, pending_3ds, authorized, captured, partially_refunded, refunded,"
        " declined, failed_3ds, failed, voided or expired"
    )
    message: str = Field(description="What the status means, in a sentence")
    amount: str
    currency: str
    captured_amount: str
    refunded_amount: str
    fee: str
    card: CardOut
    response_code: str | None = Field(
        description="ISO 8583 response code: 00 approved, 51 not sufficient funds, …"
    )
    response_message: str | None
    auth_code: str | None
    three_ds: ThreeDsOut
    created_at: datetime
    expires_at: datetime
    authorized_at: datetime | None
    captured_at: datetime | None
