"""Disbursement batches, their items and each item's attempts."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from malipo.core.ids import new_id
from malipo.db import Base


class BatchStatus(StrEnum):
    AWAITING_APPROVAL = "AwaitingApproval"  # over the approval threshold, nobody approved it yet
    READY = "Ready"  # may be processed
    PROCESSING = "Processing"  # processing was asked for; items move on their own
    # Shown, never stored: PROCESSING with no item pending or in flight.
    COMPLETED = "Completed"


class ItemStatus(StrEnum):
    PENDING = "Pending"  # nothing held yet
    PROCESSING = "Processing"  # its payout is held and queued, or sent: waiting for the rail
    PROCESSED = "Processed"  # paid; CompletedAt stamped
    FAILED = "Failed"  # its payout failed (or could not be made): may be retried


ITEM_STATUSES = tuple(ItemStatus)


class DisbursementBatch(Base):
    __tablename__ = "disbursement_batches"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    client_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("clients.id"))
    mode: Mapped[str] = mapped_column(String(4))
    name: Mapped[str] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(20))
    currency: Mapped[str] = mapped_column(String(3))
    item_count: Mapped[int]
    total_amount: Mapped[int] = mapped_column(BigInteger)  # minor units, of the accepted items
    rejected_count: Mapped[int]
    source: Mapped[str] = mapped_column(String(10))  # json | csv | xlsx
    # Who submitted it and who approved it: an API user's or a portal user's id, and which.
    submitted_by: Mapped[uuid.UUID]
    submitted_by_kind: Mapped[str] = mapped_column(String(10))
    approval_required: Mapped[bool]
    approved_by: Mapped[uuid.UUID | None]
    approved_at: Mapped[datetime | None]
    processing_started_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    __table_args__ = (Index("ix_disbursement_batches_client_created", "client_id", "mode", "created_at"),)


class DisbursementItem(Base):
    __tablename__ = "disbursement_items"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    batch_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("disbursement_batches.id"))
    client_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("clients.id"))
    mode: Mapped[str] = mapped_column(String(4))
    row: Mapped[int]  # its place in what was submitted (1-based: a file's data row number)
    destination_type: Mapped[str] = mapped_column(String(10))  # mobile | bank
    destination: Mapped[str] = mapped_column(String(40))  # the phone (2547…) or the account number
    bank_code: Mapped[str | None] = mapped_column(String(10))
    amount: Mapped[int] = mapped_column(BigInteger)  # minor units
    currency: Mapped[str] = mapped_column(String(3))
    narration: Mapped[str | None] = mapped_column(String(140))
    reference: Mapped[str | None] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(12))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    payout_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("payouts.id"), unique=True)
    fee: Mapped[int | None] = mapped_column(BigInteger)
    paid_amount: Mapped[int | None] = mapped_column(BigInteger)
    provider_reference: Mapped[str | None] = mapped_column(String(40))
    result_code: Mapped[str | None] = mapped_column(String(20))
    result_desc: Mapped[str | None] = mapped_column(String(300))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    completed_at: Mapped[datetime | None]

    __table_args__ = (
        Index("ix_disbursement_items_batch_status_row", "batch_id", "status", "row"),
        Index("ix_disbursement_items_batch_row", "batch_id", "row"),
        Index("ix_disbursement_items_client_status", "client_id", "mode", "status"),
    )


class DisbursementAttempt(Base):
    """One try at paying an item: the first processing, then each retry."""

    __tablename__ = "disbursement_attempts"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    item_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("disbursement_items.id"))
    batch_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("disbursement_batches.id"))
    client_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("clients.id"))
    mode: Mapped[str] = mapped_column(String(4))
    number: Mapped[int]
    payout_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("payouts.id"), unique=True)
    status: Mapped[str] = mapped_column(String(12))  # Processing | Processed | Failed
    result_code: Mapped[str | None] = mapped_column(String(20))
    result_desc: Mapped[str | None] = mapped_column(String(300))
    created_at: Mapped[datetime]
    completed_at: Mapped[datetime | None]

    __table_args__ = (
        UniqueConstraint("item_id", "number"),
        Index("ix_disbursement_attempts_client_created", "client_id", "mode", "created_at"),
    )


class DisbursementSettings(Base):
    """A client's own disbursement rules (absent: the settings' defaults)."""

    __tablename__ = "disbursement_settings"

    client_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("clients.id"), primary_key=True)
    # Whole shillings: a batch whose total is above it needs approval; None: never.
    approval_threshold: Mapped[int | None] = mapped_column(BigInteger)
    updated_by: Mapped[uuid.UUID | None]
    updated_at: Mapped[datetime]
