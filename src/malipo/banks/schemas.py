"""Requests and replies of the banks registry routes (/api/v1/banks)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import ConfigDict, Field, StrictBool, StringConstraints

from malipo.banks.models import CODE_PATTERN, MAX_NAME
from malipo.http.schemas import CamelModel, PlainText

CountryCode = Literal["SL", "KE"]
Kind = Literal["bank", "mobile_money"]
Rail = Literal["bankrail", "mpesa_b2b", "mobile_money"]
BankCode = Annotated[str, StringConstraints(pattern=CODE_PATTERN)]
BankName = Annotated[PlainText, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_NAME)]
Swift = Annotated[str, StringConstraints(min_length=8, max_length=11)]


class BankOut(CamelModel):
    code: str = Field(description="3 digits: an account number's first 3 digits are its bank's code")
    name: str
    swift: str | None = Field(description="SWIFT/BIC, where known")
    country: CountryCode
    kind: Kind = Field(description="`bank`, or `mobile_money` for a mobile-money operator")
    rail: Rail = Field(
        description="How malipo pays it: `bankrail` (ISO 20022 credit transfer), `mpesa_b2b` (M-Pesa "
        "B2B to the bank's paybill) or `mobile_money`"
    )
    payhero_code: str | None = Field(description="Pay Hero's 2-digit bank network code (Kenyan banks)")
    active: bool
    created_at: datetime
    updated_at: datetime


class BankList(CamelModel):
    banks: list[BankOut]


class BankIn(CamelModel):
    """A new bank or mobile-money operator."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"code": "014", "name": "Example Bank (SL)", "swift": None, "country": "SL", "kind": "bank"},
                {
                    "code": "180", "name": "Example Bank KE", "country": "KE", "kind": "bank",
                    "rail": "mpesa_b2b", "payheroCode": "80", "active": False,
                },
            ]
        }
    )  # fmt: skip

    code: BankCode = Field(
        description="3 digits: 001-099 a Sierra Leone bank, 100-199 a Kenyan bank (1 + its Pay Hero "
        "code, if it has one), 900-999 a mobile-money operator",
        examples=["014"],
    )
    name: BankName
    swift: Swift | None = Field(default=None, description="SWIFT/BIC of the bank's own country")
    country: CountryCode
    kind: Kind
    rail: Rail | None = Field(
        default=None,
        description="Absent: `bankrail` for a Sierra Leone bank, `mpesa_b2b` for a Kenyan bank, "
        "`mobile_money` for an operator",
    )
    payhero_code: str | None = Field(default=None, description="Pay Hero's 2-digit bank network code")
    active: StrictBool = True


class BankUpdate(CamelModel):
    """The fields to change; those absent stay as they are. `swift: null` clears the SWIFT/BIC."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"active": False}, {"name": "Vista Bank (SL)", "swift": "FSTISLFR"}]}
    )

    name: BankName | None = None
    swift: Swift | None = None
    active: StrictBool | None = None
    rail: Rail | None = None
