"""A collection or payout held for review: what malipo asked, what the provider said it did."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from malipo.core.ids import new_id
from malipo.db import Base


class ReviewKind(StrEnum):
    COLLECTION = "collection"
    PAYOUT = "payout"
    TRANSFER = "transfer"


class ReviewStatus(StrEnum):
    OPEN = "OPEN"
    ACCEPTED = "ACCEPTED"
    REJECTED = "REJECTED"


class CallbackReview(Base):
    """One per held item (its ``kind`` and ``subject_id``); the item itself is in status REVIEW
    until an operator accepts or rejects it."""

    __tablename__ = "callback_reviews"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    kind: Mapped[str] = mapped_column(String(10))
    subject_id: Mapped[uuid.UUID]
    client_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("clients.id"))
    mode: Mapped[str] = mapped_column(String(4))
    reference: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(10))
    asked_amount: Mapped[int]  # minor units
    received_amount: Mapped[int | None]  # minor units; None: the provider did not say
    currency: Mapped[str] = mapped_column(String(3))
    asked_party: Mapped[str | None] = mapped_column(String(60))
    received_party: Mapped[str | None] = mapped_column(String(120))
    receipt: Mapped[str | None] = mapped_column(String(30))
    reason: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime]
    resolved_at: Mapped[datetime | None]
    resolved_by: Mapped[uuid.UUID | None]  # the operator's portal user
    journal_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("ledger_journals.id"))

    __table_args__ = (
        UniqueConstraint("kind", "subject_id"),
        Index("ix_callback_reviews_status_created", "status", "created_at"),
    )
