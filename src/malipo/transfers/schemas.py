"""Requests and replies of the payments routes (/api/v1/payments) and the fraud rules.

Amounts arrive as JSON numbers or decimal strings in the client's currency, read by
``Money.parse`` in the service; they leave as decimal strings next to their currency.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import ConfigDict, Field, StringConstraints

from malipo.http.schemas import Amount, CamelModel, NoControlCharacters

AccountNumber = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=4, max_length=34, pattern=r"^[0-9]+$"),
    Field(description="The recipient's full account number (BBAN): its first 3 digits are the bank's code"),
]
Narration = Annotated[str, StringConstraints(strip_whitespace=True, max_length=140), NoControlCharacters]
OtpCode = Annotated[str, StringConstraints(min_length=6, max_length=6, pattern=r"^[0-9]{6}$")]


class TransferIn(CamelModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"accountNumber": "0011234567890", "amount": "1500.00", "narration": "Invoice 42"}]
        }
    )

    account_number: AccountNumber
    amount: Amount
    narration: Narration | None = None


class AuthorizeIn(CamelModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"transactionId": "01a25099-901c-7bb4-b5c8-236a076834af", "otpCode": "123456"}]
        }
    )

    transaction_id: uuid.UUID
    otp_code: OtpCode = Field(description="The 6-digit code sent to the API user's phone and email")


class ResendIn(CamelModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"transactionId": "01a25099-901c-7bb4-b5c8-236a076834af"}]}
    )

    transaction_id: uuid.UUID


class FlagOut(CamelModel):
    rule: str
    reason: str
    weight: int


class TransferOut(CamelModel):
    transaction_id: uuid.UUID
    reference: str
    status: str
    account_number: str
    kind: str = Field(description="bank, mobile (a bulk mobile payout's entry), client_bank or client_mobile")
    bank_code: str | None
    bank_name: str | None
    destination_client_id: uuid.UUID | None
    beneficiary_name: str | None
    entry_reference: str | None
    batch_id: uuid.UUID | None
    amount: str
    fee: str
    currency: str
    narration: str
    decision: str = Field(description="allow, otp (the code is needed) or block")
    risk_score: int
    flags: list[FlagOut]
    otp_required: bool
    otp_expires_at: datetime | None
    otp_attempts_left: int | None
    otp_resends_left: int | None
    end_to_end_id: str
    provider_reference: str | None
    reason_code: str | None = Field(
        description="The bank's ISO 20022 reason for a rejection (AC01, AC04, AM04 …)"
    )
    result_desc: str | None
    created_at: datetime
    authorized_at: datetime | None
    completed_at: datetime | None


class TransferPage(CamelModel):
    items: list[TransferOut]
    page: int
    page_size: int
    total: int


MinorAmount = Annotated[int, Field(ge=0, le=10**15)]
Count = Annotated[int, Field(ge=0, le=1_000_000)]
Score = Annotated[int, Field(ge=0, le=10_000)]


class FraudRulesIn(CamelModel):
    """Amounts in the client's currency (major units, as every amount)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "maxAmount": "500000.00",
                    "dailyCount": 50,
                    "dailyValue": "2000000.00",
                    "destinationDailyCount": 10,
                    "destinationDailyValue": "1000000.00",
                    "duplicateWindowMinutes": 10,
                    "newDestinationAmount": "100000.00",
                    "otpScore": 0,
                    "blockScore": 100,
                }
            ]
        }
    )

    max_amount: Amount
    daily_count: Count
    daily_value: Amount
    destination_daily_count: Count
    destination_daily_value: Amount
    duplicate_window_minutes: Annotated[int, Field(ge=0, le=1440)]
    new_destination_amount: Amount
    otp_score: Score = Field(description="A score at or above this needs the one-time code (0: always)")
    block_score: Score = Field(description="A score at or above this is refused")


class FraudRulesOut(CamelModel):
    client_id: uuid.UUID
    currency: str
    max_amount: str
    daily_count: int
    daily_value: str
    destination_daily_count: int
    destination_daily_value: str
    duplicate_window_minutes: int
    new_destination_amount: str
    otp_score: int
    block_score: int
    weights: dict[str, int]
    source: str = Field(description="client (set by the operator) or default")


class BlockIn(CamelModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"destination": "0039876543210", "reason": "reported as a mule account"}]
        }
    )

    destination: Annotated[
        str,
        StringConstraints(strip_whitespace=True, min_length=3, max_length=34, pattern=r"^\+?[0-9A-Za-z]+$"),
    ]
    reason: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200), NoControlCharacters
    ]


class BlockOut(CamelModel):
    id: uuid.UUID
    client_id: uuid.UUID | None
    destination: str
    reason: str
    created_at: datetime


PhoneNumber = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=32), NoControlCharacters
]
EntryText = Annotated[str, StringConstraints(strip_whitespace=True, max_length=140), NoControlCharacters]
MAX_ENTRIES = 1000


class MobilePaymentIn(CamelModel):
    phone_number: PhoneNumber
    amount: Amount
    narration: EntryText | None = None


class MobileBulkIn(CamelModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "payments": [
                        {"phoneNumber": "0712345678", "amount": 500, "narration": "Commission May"},
                        {"phoneNumber": "0722000111", "amount": "1200", "narration": "Commission May"},
                    ]
                }
            ]
        }
    )

    payments: list[MobilePaymentIn] = Field(min_length=1, max_length=MAX_ENTRIES)


class ClientEntryIn(CamelModel):
    amount: Amount
    narration: EntryText | None = None
    reference: (
        Annotated[str, StringConstraints(strip_whitespace=True, max_length=100), NoControlCharacters] | None
    ) = None
    beneficiary_name: EntryText | None = None


class ClientBankTransferIn(CamelModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "destinationClientId": "4716f81e-b3da-45bc-9ba7-eb482a49850e",
                    "accountNumber": "0030004445556",
                    "entries": [
                        {
                            "amount": "1200.00",
                            "narration": "Pension May: A. Kamara",
                            "reference": "EMP-001",
                            "beneficiaryName": "Aminata Kamara",
                        }
                    ],
                }
            ]
        }
    )

    destination_client_id: uuid.UUID
    account_number: Annotated[
        str,
        StringConstraints(strip_whitespace=True, min_length=3, max_length=34, pattern=r"^[0-9]+$"),
        Field(description="The destination client's bank account: its first 3 digits are the bank's code"),
    ]
    entries: list[ClientEntryIn] = Field(min_length=1, max_length=MAX_ENTRIES)


class ClientMobileTransferIn(CamelModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "destinationClientId": "4716f81e-b3da-45bc-9ba7-eb482a49850e",
                    "phoneNumber": "+254712000111",
                    "entries": [{"amount": 100, "narration": "May"}],
                }
            ]
        }
    )

    destination_client_id: uuid.UUID
    phone_number: PhoneNumber = Field(description="The beneficiary's phone number, with its country code")
    entries: list[ClientEntryIn] = Field(min_length=1, max_length=MAX_ENTRIES)


class RejectedEntry(CamelModel):
    index: int
    destination: str
    amount: str
    field: str
    reason: str
    flags: list[FlagOut]


class BulkOut(CamelModel):
    batch_id: uuid.UUID
    accepted: list[TransferOut]
    rejected: list[RejectedEntry]
    accepted_count: int
    rejected_count: int
