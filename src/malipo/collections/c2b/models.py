"""Tables of C2B: each channel's C2B rules and registration, each C2B payment (once per TransID),
payment requests and what paid them."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, String, text
from sqlalchemy.orm import Mapped, mapped_column

from malipo.collections.models import ChannelId
from malipo.core.ids import new_id
from malipo.db import Base


class C2bRule(StrEnum):
    ACCEPT_ALL = "acceptAll"
    REQUIRE_KNOWN_REFERENCE = "requireKnownReference"


class RegistrationStatus(StrEnum):
    PENDING = "pending"  # stored; the worker has not registered the URLs with Daraja yet
    REGISTERED = "registered"
    FAILED = "failed"


class C2bChannel(Base):
    """A channel's C2B rules and its URL registration with Daraja."""

    __tablename__ = "c2b_channels"

    channel_id: Mapped[int] = mapped_column(ChannelId, ForeignKey("payment_channels.id"), primary_key=True)
    client_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("clients.id"), index=True)
    mode: Mapped[str] = mapped_column(String(4))
    rule: Mapped[str] = mapped_column(String(24))
    min_amount: Mapped[int | None] = mapped_column(BigInteger)  # minor units
    max_amount: Mapped[int | None] = mapped_column(BigInteger)
    response_type: Mapped[str] = mapped_column(String(10))  # Daraja's: Completed | Cancelled
    callback_url: Mapped[str | None] = mapped_column(String(2000))
    # The shortcode registered (the merchant's own, or the operator's for a wallet channel).
    short_code: Mapped[str] = mapped_column(String(20))
    # SHA-256 of the token in the validation and confirmation URLs of the merchant's own shortcode
    # (NULL for a wallet channel: the operator shortcode's URLs are one for the app).
    token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    registration_status: Mapped[str] = mapped_column(String(10))
    registration_reply: Mapped[dict[str, Any] | None] = mapped_column()
    registered_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class C2bPayment(Base):
    """One C2B confirmation, once per TransID. ``client_id`` NULL: money that arrived on the
    operator shortcode naming no channel of any merchant (kept for the operator to resolve)."""

    __tablename__ = "c2b_payments"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    trans_id: Mapped[str] = mapped_column(String(30), unique=True)
    client_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("clients.id"))
    mode: Mapped[str] = mapped_column(String(4))
    channel_id: Mapped[int | None] = mapped_column(ChannelId, ForeignKey("payment_channels.id"))
    collection_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("collections.id"))
    short_code: Mapped[str] = mapped_column(String(20))
    bill_ref_number: Mapped[str] = mapped_column(String(40))
    amount: Mapped[int] = mapped_column(BigInteger)  # minor units
    currency: Mapped[str] = mapped_column(String(3))
    msisdn: Mapped[str] = mapped_column(String(80))
    payer_name: Mapped[str] = mapped_column(String(200))
    trans_time: Mapped[str] = mapped_column(String(20))
    payment_request_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("payment_requests.id"))
    overpaid: Mapped[int] = mapped_column(BigInteger)  # the part not owed by a request (minor units)
    unmatched_reason: Mapped[str | None] = mapped_column(String(200))
    body: Mapped[dict[str, Any]] = mapped_column()
    created_at: Mapped[datetime]

    __table_args__ = (Index("ix_c2b_payments_client_created", "client_id", "mode", "created_at"),)


class PaymentRequestStatus(StrEnum):
    OPEN = "open"
    PAID = "paid"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


class PaymentRequest(Base):
    """An amount a payer is asked to pay later, by C2B with ``account_reference`` or an STK push."""

    __tablename__ = "payment_requests"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    client_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("clients.id"))
    mode: Mapped[str] = mapped_column(String(4))
    api_user_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("api_users.id"))
    channel_id: Mapped[int | None] = mapped_column(ChannelId, ForeignKey("payment_channels.id"))
    account_reference: Mapped[str] = mapped_column(String(20))
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    paid_amount: Mapped[int] = mapped_column(BigInteger)
    overpaid_amount: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(10))
    description: Mapped[str | None] = mapped_column(String(200))
    callback_url: Mapped[str | None] = mapped_column(String(2000))
    expires_at: Mapped[datetime]
    paid_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    __table_args__ = (
        # One open request per reference, merchant and mode (a C2B payment names it by reference).
        Index(
            "uq_payment_requests_open_reference",
            "client_id",
            "mode",
            "account_reference",
            unique=True,
            postgresql_where=text("status = 'open'"),
            sqlite_where=text("status = 'open'"),
        ),
        Index("ix_payment_requests_client_created", "client_id", "mode", "created_at"),
    )


class PaymentRequestPayment(Base):
    """A successful collection (C2B or STK) counted towards a request; ``overpaid`` is its part
    beyond what the request still owed (all of it for a request no longer open)."""

    __tablename__ = "payment_request_payments"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    request_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("payment_requests.id"), index=True)
    collection_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("collections.id"), unique=True)
    amount: Mapped[int] = mapped_column(BigInteger)
    overpaid: Mapped[int] = mapped_column(BigInteger)
    receipt: Mapped[str | None] = mapped_column(String(30))
    created_at: Mapped[datetime]
