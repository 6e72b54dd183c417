"""Transfers out of a merchant's payments wallet, their one-time codes, and the fraud rules."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from malipo.core.ids import new_id
from malipo.db import Base, JSONType


class TransferStatus(StrEnum):
    # Funds held; waiting for the API user's one-time code.
    PENDING = "PENDING"
    # Authorised (or allowed without a code): with the rail, waiting for its result.
    PROCESSING = "PROCESSING"
    COMPLETED = "COMPLETED"
    # The bank rejected it (reason_code says why): the holds released.
    FAILED = "FAILED"
    # Too many wrong codes, or never authorised in time: the holds released, nothing sent.
    CANCELLED = "CANCELLED"
    # The rail says settled, but not what was asked: holds kept until an operator decides.
    REVIEW = "REVIEW"


class Transfer(Base):
    __tablename__ = "transfers"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    client_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("clients.id"))
    mode: Mapped[str] = mapped_column(String(4))
    api_user_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("api_users.id"))
    reference: Mapped[str] = mapped_column(String(20), unique=True)
    # bank (to a bank account, through the bank rail), mobile (one entry of a bulk mobile payout,
    # paid through ``payouts``), client_bank / client_mobile (an entry of a client-to-client
    # transfer: from this client's payments wallet to the destination client's).
    kind: Mapped[str] = mapped_column(String(13))
    # The destination: a bank account number, or a phone number for the mobile kinds.
    account_number: Mapped[str] = mapped_column(String(34))
    bank_code: Mapped[str | None] = mapped_column(String(3))
    bank_name: Mapped[str | None] = mapped_column(String(120))
    destination_client_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("clients.id"))
    # The payout that pays a mobile entry (its holds, its rail, its result).
    payout_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("payouts.id"))
    beneficiary_name: Mapped[str | None] = mapped_column(String(140))
    entry_reference: Mapped[str | None] = mapped_column(String(100))
    # The entries of one bulk request share it.
    batch_id: Mapped[uuid.UUID | None] = mapped_column(index=True)
    amount: Mapped[int]  # minor units
    currency: Mapped[str] = mapped_column(String(3))
    fee: Mapped[int]
    narration: Mapped[str] = mapped_column(String(140))
    status: Mapped[str] = mapped_column(String(10))
    # The fraud rules' verdict: allow, otp or block, the score and the flags that made it.
    decision: Mapped[str] = mapped_column(String(5))
    risk_score: Mapped[int] = mapped_column(Integer)
    flags: Mapped[list[dict[str, Any]]] = mapped_column(JSONType)
    hold_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("ledger_holds.id"))
    fee_hold_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("ledger_holds.id"))
    # The one-time code: only its HMAC is kept, never the code.
    otp_hash: Mapped[str | None] = mapped_column(String(64))
    otp_expires_at: Mapped[datetime | None]
    otp_sent_at: Mapped[datetime | None]
    otp_failures: Mapped[int] = mapped_column(Integer, default=0)
    otp_resends: Mapped[int] = mapped_column(Integer, default=0)
    # The rail: our EndToEndId, the rail's reference, its reason code for a rejection.
    end_to_end_id: Mapped[str] = mapped_column(String(35), unique=True)
    callback_token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    provider_reference: Mapped[str | None] = mapped_column(String(64))
    reason_code: Mapped[str | None] = mapped_column(String(8))
    result_desc: Mapped[str | None] = mapped_column(String(300))
    queries: Mapped[int] = mapped_column(Integer, default=0)
    journal_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("ledger_journals.id"))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    authorized_at: Mapped[datetime | None]
    sent_at: Mapped[datetime | None]
    completed_at: Mapped[datetime | None]

    __table_args__ = (
        Index("ix_transfers_client_created", "client_id", "mode", "created_at"),
        Index("ix_transfers_destination", "client_id", "mode", "account_number", "created_at"),
        Index("ix_transfers_api_user", "api_user_id", "created_at"),
        Index("ix_transfers_destination_client", "destination_client_id", "mode", "created_at"),
    )


class FraudRules(Base):
    """A client's fraud rule settings, set by the operator; a client without a row uses the defaults
    (``malipo.transfers.fraud.DEFAULT_RULES``). Amounts in minor units of the client's currency."""

    __tablename__ = "fraud_rules"

    client_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("clients.id"), primary_key=True)
    max_amount: Mapped[int]
    daily_count: Mapped[int]
    daily_value: Mapped[int]
    destination_daily_count: Mapped[int]
    destination_daily_value: Mapped[int]
    duplicate_window_minutes: Mapped[int]
    new_destination_amount: Mapped[int]
    # A score at or above otp_score needs the one-time code; at or above block_score is refused.
    otp_score: Mapped[int]
    block_score: Mapped[int]
    updated_at: Mapped[datetime]


class BlockedDestination(Base):
    """An account number or phone a client (or, with no client, every client) may not pay."""

    __tablename__ = "fraud_blocklist"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    client_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("clients.id"), index=True)
    destination: Mapped[str] = mapped_column(String(34))
    reason: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime]

    __table_args__ = (UniqueConstraint("client_id", "destination"),)
