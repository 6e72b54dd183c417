"""Refunds: one reversal asked of the rail for (part of) a collection."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import BigInteger, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from malipo.core.ids import new_id
from malipo.db import Base


class RefundStatus(StrEnum):
    PENDING = "pending"  # the amount held on the payments wallet; the reversal asked or to ask
    COMPLETED = "completed"  # the rail reversed it: the journal posted, the hold spent
    FAILED = "failed"  # the rail refused it (or it was never sent): the hold released


class Refund(Base):
    __tablename__ = "refunds"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    client_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("clients.id"))
    mode: Mapped[str] = mapped_column(String(4))
    collection_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("collections.id"), index=True)
    reference: Mapped[str] = mapped_column(String(20), unique=True)  # ours, sent as the Occasion
    amount: Mapped[int] = mapped_column(BigInteger)  # minor units
    currency: Mapped[str] = mapped_column(String(3))
    reason: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(10))
    # SHA-256 of the secret in the reversal's ResultURL: the result finds the refund by it.
    callback_token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    hold_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("ledger_holds.id"))
    journal_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("ledger_journals.id"))
    # Daraja's ids from its ack (the result must name them back) and the reversal's own receipt.
    originator_conversation_id: Mapped[str | None] = mapped_column(String(100))
    conversation_id: Mapped[str | None] = mapped_column(String(60))
    reversal_receipt: Mapped[str | None] = mapped_column(String(30))
    result_code: Mapped[str | None] = mapped_column(String(20))  # the rail's: "0", "R000001", …
    result_desc: Mapped[str | None] = mapped_column(String(300))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]
    completed_at: Mapped[datetime | None]

    __table_args__ = (Index("ix_refunds_client_created", "client_id", "mode", "created_at"),)
