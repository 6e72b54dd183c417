"""Requests and replies of the wallet routes (/api/v1/wallet).

Amounts arrive as JSON numbers or decimal strings in the wallet's currency and are
read by ``Money.parse`` in the service (which knows the currency: no booleans, signs,
spaces, underscores or more decimals than the currency has; JSON numbers exactly as
written); they leave as decimal strings next to their currency:
``{"amount": "10.50", "currency": "KES"}``. Descriptions and references carry no control
characters.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import ConfigDict, Field, StringConstraints

from malipo.http.schemas import Amount, CamelModel, NoControlCharacters

Description = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200), NoControlCharacters
]
ExternalReference = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100), NoControlCharacters
]
EntryType = Literal["credit", "debit"]


class TopUpIn(CamelModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"amount": "2000.00", "description": "Top-up for the weekend"}]}
    )

    amount: Amount
    description: Description


class TransferIn(CamelModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "recipientCustomerId": "8d0e6f4a-2b1c-4f3e-a5d6-7c8b9a0e1f2d",
                    "amount": "250.00",
                    "description": "Lunch at Java House",
                }
            ]
        }
    )

    recipient_customer_id: uuid.UUID
    amount: Amount
    description: Description


class PaymentIn(CamelModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"amount": "1200.00", "description": "Order 1042", "externalReference": "INV-1042"}]
        }
    )

    amount: Amount
    description: Description
    external_reference: ExternalReference = Field(
        description="Your reference (an invoice id); unique per client"
    )


class BalanceOut(CamelModel):
    customer_id: uuid.UUID
    balance: str
    available: str = Field(description="The balance less funds on hold")
    currency: str


class MovementOut(CamelModel):
    """A completed movement of the wallet: its journal `reference` and the balance after it."""

    reference: str
    status: Literal["completed"]
    amount: str
    currency: str
    description: str
    balance: str
    available: str
    created_at: datetime


class TopUpOut(MovementOut):
    pass


class TransferOut(MovementOut):
    recipient_customer_id: uuid.UUID


class PaymentOut(MovementOut):
    external_reference: str


class StatementEntry(CamelModel):
    date: datetime
    reference: str
    kind: Literal["top_up", "transfer", "payment", "other"]
    type: EntryType
    description: str
    amount: str = Field(description="The entry's amount, always positive: `type` says which way")
    balance: str = Field(description="The wallet's balance right after this entry")
    currency: str


class StatementOut(CamelModel):
    """What `format=json` streams; `format=csv` streams the same entries as CSV rows."""

    customer_id: uuid.UUID
    currency: str
    start_date: date | None
    end_date: date | None
    type: EntryType | None
    opening_balance: str = Field(description="The balance before the first day of the range")
    closing_balance: str = Field(description="The balance at the end of the last day of the range")
    entries: list[StatementEntry]
