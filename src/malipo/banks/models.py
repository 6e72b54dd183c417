"""The banks registry: one row per bank or mobile-money operator, keyed by its 3-digit code.

Codes (``malipo.banks.seed`` says how the seeded ones were chosen):

- ``001`` to ``099``: Sierra Leone banks, paid on the ISO 20022 bank-transfer rail (``bankrail``);
- ``100`` to ``199``: Kenyan banks, ``1`` + Pay Hero's 2-digit bank network code (``payhero_code``),
  paid by M-Pesa B2B to the bank's paybill (``mpesa_b2b``);
- ``900`` to ``999``: mobile-money operators (``kind`` ``mobile_money``, rail ``mobile_money``), kept
  apart from banks so that reports tell a bank from a wallet.

An account number's first 3 digits are its bank's code (``service.bank_for_account``).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from malipo.db import Base

CODE_PATTERN = r"^[0-9]{3}$"  # a bank's code: exactly 3 ASCII digits
MAX_NAME = 100


class Country(StrEnum):
    """ISO 3166-1 alpha-2 codes of the countries malipo pays into."""

    SL = "SL"
    KE = "KE"


class BankKind(StrEnum):
    BANK = "bank"
    MOBILE_MONEY = "mobile_money"


class BankRail(StrEnum):
    """How malipo pays an account at this institution."""

    BANKRAIL = "bankrail"  # ISO 20022 credit transfer (Sierra Leone banks)
    MPESA_B2B = "mpesa_b2b"  # M-Pesa B2B to the bank's paybill (Kenyan banks)
    MOBILE_MONEY = "mobile_money"  # the operator's own wallet rail


class Bank(Base):
    __tablename__ = "banks"

    code: Mapped[str] = mapped_column(String(3), primary_key=True)
    name: Mapped[str] = mapped_column(String(MAX_NAME))
    swift: Mapped[str | None] = mapped_column(String(11))
    country: Mapped[str] = mapped_column(String(2))
    kind: Mapped[str] = mapped_column(String(12))
    rail: Mapped[str] = mapped_column(String(12))
    payhero_code: Mapped[str | None] = mapped_column(String(2), unique=True)
    active: Mapped[bool]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
