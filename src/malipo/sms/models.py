"""Merchants' SMS: bulk batches and one row per message."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import Boolean, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from malipo.core.ids import new_id
from malipo.db import Base, EncryptedText


class SmsStatus(StrEnum):
    QUEUED = "queued"
    SENT = "sent"
    DELIVERED = "delivered"
    FAILED = "failed"


class SmsBatch(Base):
    """One bulk send: the text, what was accepted and rejected, and what it cost."""

    __tablename__ = "sms_batches"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    client_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("clients.id"), index=True)
    mode: Mapped[str] = mapped_column(String(4))
    sender_id: Mapped[str | None] = mapped_column(String(11))
    # Texts may carry codes and personal data: encrypted at rest, like mail bodies.
    message: Mapped[str] = mapped_column(EncryptedText)
    accepted: Mapped[int]
    rejected: Mapped[int]
    segments: Mapped[int]
    cost: Mapped[int]  # minor units of ``currency``, for every accepted recipient
    currency: Mapped[str] = mapped_column(String(3))
    journal_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("ledger_journals.id"))
    created_at: Mapped[datetime]


class SmsMessage(Base):
    """One SMS to one number. Moves queued -> sent -> delivered | failed (failed also from queued)."""

    __tablename__ = "sms_messages"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    client_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("clients.id"))
    mode: Mapped[str] = mapped_column(String(4))
    batch_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("sms_batches.id"), index=True)
    phone_number: Mapped[str] = mapped_column(String(20))
    sender_id: Mapped[str | None] = mapped_column(String(11))
    message: Mapped[str] = mapped_column(EncryptedText)
    segments: Mapped[int]
    encoding: Mapped[str] = mapped_column(String(5))
    cost: Mapped[int]
    currency: Mapped[str] = mapped_column(String(3))
    # Set on single sends; a bulk's charge is its batch's journal.
    journal_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("ledger_journals.id"))
    status: Mapped[str] = mapped_column(String(10), default=SmsStatus.QUEUED)
    gateway_message_id: Mapped[str | None] = mapped_column(String(100), unique=True)
    # The provider's own word for the latest state (Success, UserInBlacklist, Buffered, …).
    gateway_status: Mapped[str | None] = mapped_column(String(40))
    failure_reason: Mapped[str | None] = mapped_column(String(500))
    attempts: Mapped[int] = mapped_column(default=0)
    refunded: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]
    delivered_at: Mapped[datetime | None]

    __table_args__ = (Index("ix_sms_messages_client_id_created_at", "client_id", "created_at"),)


class SystemSms(Base):
    """An SMS malipo itself sent (a transfer's one-time code): kept only so that its delivery
    report is recognised and recorded. Neither its text nor anything a merchant's key can read."""

    __tablename__ = "sms_system_messages"

    gateway_message_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    purpose: Mapped[str] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(10), default=SmsStatus.SENT)
    gateway_status: Mapped[str | None] = mapped_column(String(40))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
