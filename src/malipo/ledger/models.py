"""The double-entry ledger: accounts, journals, postings and holds.

Amounts are signed integers of minor units: a posting's amount is added to its
account's balance (credits positive, debits negative from the account's side).
Journals and postings are append-only; a correction is a reversing journal.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Identity, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from malipo.core.ids import new_id
from malipo.db import Base


class AccountKind(StrEnum):
    CUSTOMER_WALLET = "customer_wallet"
    PAYMENTS_WALLET = "payments_wallet"  # a merchant's collected funds
    SERVICE_WALLET = "service_wallet"  # a merchant's prepaid fees
    # The gateway's own chart, one of each per currency and mode:
    MOBILE_MONEY_CLEARING = "mobile_money_clearing"
    BANK_CLEARING = "bank_clearing"
    CARD_CLEARING = "card_clearing"
    FEE_REVENUE = "fee_revenue"
    SUSPENSE = "suspense"
    SANDBOX_FUNDING = "sandbox_funding"  # where sandbox top-ups come from
    # Collections paid straight to a merchant's own till, paybill or bank account.
    EXTERNAL_SETTLEMENT = "external_settlement"
    # Reconciliation differences written off (credit: money kept; debit: money lost).
    WRITE_OFF = "write_off"


SYSTEM_KINDS = (
    AccountKind.MOBILE_MONEY_CLEARING,
    AccountKind.BANK_CLEARING,
    AccountKind.CARD_CLEARING,
    AccountKind.FEE_REVENUE,
    AccountKind.SUSPENSE,
    AccountKind.SANDBOX_FUNDING,
    AccountKind.EXTERNAL_SETTLEMENT,
    AccountKind.WRITE_OFF,
)


class HoldStatus(StrEnum):
    ACTIVE = "active"
    SETTLED = "settled"
    RELEASED = "released"


class LedgerAccount(Base):
    __tablename__ = "ledger_accounts"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    # "system", "client:<id>" or "customer:<id>": one key, so uniqueness holds on both backends.
    owner_key: Mapped[str] = mapped_column(String(60))
    client_id: Mapped[uuid.UUID | None] = mapped_column(index=True)
    mode: Mapped[str] = mapped_column(String(4))
    kind: Mapped[str] = mapped_column(String(40))
    currency: Mapped[str] = mapped_column(String(3))
    allow_negative: Mapped[bool] = mapped_column(Boolean, default=False)
    # Kept in the same transaction as the postings; `ledger verify` proves it equals their sum.
    balance: Mapped[int] = mapped_column(default=0)
    # Sum of active holds; available = balance - held.
    held: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime]

    __table_args__ = (UniqueConstraint("owner_key", "kind", "currency", "mode"),)


class Journal(Base):
    __tablename__ = "ledger_journals"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    client_id: Mapped[uuid.UUID | None] = mapped_column(index=True)
    mode: Mapped[str] = mapped_column(String(4))
    reference: Mapped[str] = mapped_column(String(40))
    kind: Mapped[str] = mapped_column(String(40))
    description: Mapped[str] = mapped_column(String(300))
    # Dedupes a movement at the ledger itself (e.g. a provider's receipt number).
    idempotency_key: Mapped[str | None] = mapped_column(String(300))
    reverses_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("ledger_journals.id"))
    details: Mapped[dict[str, Any]]
    created_at: Mapped[datetime]

    __table_args__ = (UniqueConstraint("idempotency_key"),)


class Posting(Base):
    __tablename__ = "ledger_postings"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    journal_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("ledger_journals.id"), index=True)
    account_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("ledger_accounts.id"))
    amount: Mapped[int]
    currency: Mapped[str] = mapped_column(String(3))
    # The account's balance right after this posting: statements read running balances from it.
    balance_after: Mapped[int]
    created_at: Mapped[datetime]
    # The order postings were written in, assigned by the database (not the caller's clock, which
    # may go back): statements and an account's latest posting follow it. An account's postings
    # are written under its row lock, so their seq order is the order of their balance_after.
    # PostgreSQL: an identity column. SQLite has none for a column that is not the key:
    # repository.insert_postings sets MAX(seq) + n in the INSERT, under SQLite's single writer.
    seq: Mapped[int] = mapped_column(Identity(), unique=True)

    # Statements read an account's postings in seq order; the created_at index stays for a date
    # window of a large account (the planner starts at the window rather than walking the account
    # from its first posting).
    __table_args__ = (
        Index("ix_ledger_postings_account_id_created_at", "account_id", "created_at"),
        Index("ix_ledger_postings_account_id_seq", "account_id", "seq"),
    )


class Hold(Base):
    __tablename__ = "ledger_holds"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    account_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("ledger_accounts.id"), index=True)
    amount: Mapped[int]
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(10), default=HoldStatus.ACTIVE)
    reference: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]
