"""Requests and replies of the channel routes (/api/v1/channels).

A channel is where a collection's money goes: the merchant's own paybill, till or bank
account (by its paybill number and account), or its payments wallet in malipo (``wallet``,
one per mode, opened on first use and always active).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import ConfigDict, Field, StringConstraints

from malipo.http.schemas import CamelModel, NoControlCharacters

ShortCode = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^[0-9]{5,10}$")]
AccountNumber = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=40), NoControlCharacters
]
Description = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200), NoControlCharacters
]


class ChannelIn(CamelModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"channelType": "till", "shortCode": "5123456", "description": "Moi Avenue shop till"},
                {
                    "channelType": "bank",
                    "shortCode": "522522",
                    "accountNumber": "1280006242",
                    "description": "KCB current account",
                },
            ]
        }
    )

    channel_type: Literal["paybill", "till", "bank"]
    short_code: ShortCode = Field(
        description="The paybill or till number (a bank's paybill for `bank`), 5 to 10 digits",
        examples=["522522"],
    )
    account_number: AccountNumber | None = Field(
        default=None, description="The account at the paybill; required for `bank`", examples=["1280006242"]
    )
    description: Description


class ChannelOut(CamelModel):
    id: int
    channel_type: Literal["wallet", "paybill", "till", "bank"]
    transaction_type: str = Field(description="The Daraja transaction type the channel implies")
    mode: Literal["test", "live"]
    short_code: str
    account_number: str | None
    description: str
    is_active: bool
    balance: str | None = Field(description="The payments wallet's balance (`wallet` only)")
    currency: str | None = Field(description="The balance's currency (`wallet` only)")
    created_at: datetime
    updated_at: datetime


class ChannelPage(CamelModel):
    channels: list[ChannelOut]
    page: int
    page_size: int
    total: int
