"""Merchant callbacks (deliveries) and each attempt to deliver them."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from malipo.core.ids import new_id
from malipo.db import Base


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"  # every attempt refused; kept for a replay


class WebhookDelivery(Base):
    """One callback to a merchant. Its ``id`` is the callback id the merchant de-duplicates on
    (the ``X-Malipo-Callback-Id`` header and the body's ``callback_id``): the same on every attempt,
    as delivery is at-least-once."""

    __tablename__ = "webhook_deliveries"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    client_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("clients.id"), index=True)
    mode: Mapped[str] = mapped_column(String(4))
    # What it reports: "collection.success", "collection.failed", "payout.success" …
    event: Mapped[str] = mapped_column(String(40))
    # The reference of the object it is about (a collection's or payout's reference).
    subject_reference: Mapped[str] = mapped_column(String(40), index=True)
    url: Mapped[str] = mapped_column(String(2000))
    payload: Mapped[dict[str, Any]]
    status: Mapped[str] = mapped_column(String(10))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    delivered_at: Mapped[datetime | None]


class AttemptOutcome(StrEnum):
    IN_FLIGHT = "in_flight"  # recorded before the POST; the worker is waiting for the answer
    DELIVERED = "delivered"  # 2xx
    REFUSED = "refused"  # another status, or no answer (connection refused, timed out)
    # The worker that made it died mid-call: the merchant may or may not have received it.
    UNKNOWN = "unknown"


class WebhookAttempt(Base):
    """One POST of a delivery. Recorded before the call (``in_flight``) and completed after, so an
    attempt whose worker died mid-call stays visible: the next run marks it ``unknown``."""

    __tablename__ = "webhook_attempts"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    delivery_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("webhook_deliveries.id"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    outcome: Mapped[str] = mapped_column(String(10))
    started_at: Mapped[datetime]
    # None until the answer came (in flight, or unknown).
    duration_ms: Mapped[int | None] = mapped_column(Integer)
    status_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
