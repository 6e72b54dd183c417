"""Payouts and their outcome."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from malipo.core.ids import new_id
from malipo.db import Base


class PayoutStatus(StrEnum):
    QUEUED = "QUEUED"  # funds held; the request is not sent yet
    SENT = "SENT"  # the provider accepted it; waiting for its result
    SUCCESS = "SUCCESS"
    FAILED = "FAILED"
    # Daraja said paid, but not what was asked (amount or receiver): the holds kept, nothing
    # settled, the merchant not told, until an operator accepts or rejects it (malipo.reviews).
    REVIEW = "REVIEW"


PAYOUT_FINAL_STATES = frozenset({PayoutStatus.SUCCESS, PayoutStatus.FAILED})
# States no provider answer moves any more (a review is resolved by an operator only).
PAYOUT_CLOSED_STATES = PAYOUT_FINAL_STATES | {PayoutStatus.REVIEW}


class Payout(Base):
    __tablename__ = "payouts"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    client_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("clients.id"))
    mode: Mapped[str] = mapped_column(String(4))
    api_user_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("api_users.id"))
    reference: Mapped[str] = mapped_column(String(20), unique=True)
    external_reference: Mapped[str | None] = mapped_column(String(100))
    channel: Mapped[str] = mapped_column(String(10))  # mobile | bank
    network_code: Mapped[str] = mapped_column(String(10))
    phone: Mapped[str | None] = mapped_column(String(20))
    account_number: Mapped[str | None] = mapped_column(String(40))
    amount: Mapped[int]  # minor units
    currency: Mapped[str] = mapped_column(String(3))
    fee: Mapped[int]
    hold_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("ledger_holds.id"))
    fee_hold_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("ledger_holds.id"))
    callback_url: Mapped[str | None] = mapped_column(String(2000))
    status: Mapped[str] = mapped_column(String(10))
    callback_token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # Sent to Daraja as OriginatorConversationID (and shown to the merchant from the first reply).
    originator_conversation_id: Mapped[str] = mapped_column(String(60), unique=True)
    conversation_id: Mapped[str | None] = mapped_column(String(60))
    transaction_id: Mapped[str | None] = mapped_column(String(30))
    result_code: Mapped[int | None] = mapped_column(Integer)
    result_desc: Mapped[str | None] = mapped_column(String(300))
    journal_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("ledger_journals.id"))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]
    completed_at: Mapped[datetime | None]

    __table_args__ = (
        UniqueConstraint("client_id", "mode", "external_reference"),
        Index("ix_payouts_client_created", "client_id", "mode", "created_at"),
    )
