"""Checkout sessions (one payment on a hosted page) and payment links (a standing page that opens one)."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from malipo.collections.models import ChannelId
from malipo.core.ids import new_id
from malipo.db import Base


class SessionStatus(StrEnum):
    OPEN = "open"  # waiting for the payer
    PENDING = "pending"  # a payment attempt is in flight (STK push sent, or a 3-D Secure challenge)
    COMPLETED = "completed"  # paid: never payable again
    EXPIRED = "expired"  # not paid before ``expires_at``: never payable again


class PayMethod(StrEnum):
    MPESA = "mpesa"
    CARD = "card"


class PaymentLink(Base):
    """A merchant's standing payment page, ``/pay/{slug}``: each payment opens a checkout session."""

    __tablename__ = "payment_links"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    slug: Mapped[str] = mapped_column(String(40), unique=True)
    client_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("clients.id"))
    mode: Mapped[str] = mapped_column(String(4))
    api_user_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("api_users.id"))
    title: Mapped[str] = mapped_column(String(100))
    description: Mapped[str | None] = mapped_column(String(500))
    amount: Mapped[int | None]  # minor units; None: the payer chooses, within min and max
    min_amount: Mapped[int]
    max_amount: Mapped[int]
    currency: Mapped[str] = mapped_column(String(3))
    channel_id: Mapped[int | None] = mapped_column(ChannelId, ForeignKey("payment_channels.id"))
    callback_url: Mapped[str | None] = mapped_column(String(2000))
    success_url: Mapped[str | None] = mapped_column(String(400))
    is_active: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    __table_args__ = (Index("ix_payment_links_client_created", "client_id", "mode", "created_at"),)


class CheckoutSession(Base):
    """One payment a payer makes on the hosted page ``/checkout/{public_id}``."""

    __tablename__ = "checkout_sessions"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    # The session's id outside malipo (``cs_…``): unguessable, it is the page's only credential.
    public_id: Mapped[str] = mapped_column(String(40), unique=True)
    client_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("clients.id"))
    mode: Mapped[str] = mapped_column(String(4))
    api_user_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("api_users.id"))
    link_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("payment_links.id"))
    amount: Mapped[int]  # minor units
    currency: Mapped[str] = mapped_column(String(3))
    description: Mapped[str | None] = mapped_column(String(200))
    order_id: Mapped[str | None] = mapped_column(String(64))
    return_url: Mapped[str | None] = mapped_column(String(400))
    callback_url: Mapped[str | None] = mapped_column(String(2000))
    channel_id: Mapped[int | None] = mapped_column(ChannelId, ForeignKey("payment_channels.id"))
    status: Mapped[str] = mapped_column(String(10))
    method: Mapped[str | None] = mapped_column(String(8))  # of the attempt in flight, or that paid
    attempts: Mapped[int] = mapped_column(Integer)
    collection_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("collections.id"), index=True)
    card_authorization_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("card_authorizations.id"), index=True
    )
    payer_phone: Mapped[str | None] = mapped_column(String(20))
    last_error: Mapped[str | None] = mapped_column(String(300))  # why the last attempt did not pay
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    completed_at: Mapped[datetime | None]

    __table_args__ = (Index("ix_checkout_sessions_client_created", "client_id", "mode", "created_at"),)
