"""Payment channels and collections (STK push requests and their outcome)."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, Integer, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from malipo.core.ids import new_id
from malipo.db import Base

# Pay Hero clients send integer channel ids; SQLite numbers only an INTEGER primary key itself.
ChannelId = BigInteger().with_variant(Integer(), "sqlite")


class ChannelType(StrEnum):
    WALLET = "wallet"  # the merchant's payments wallet inside malipo
    PAYBILL = "paybill"
    TILL = "till"
    BANK = "bank"


# The Daraja transaction type a channel implies (Pay Hero's `transaction_type`).
TRANSACTION_TYPES = {
    ChannelType.WALLET: "CustomerBuyGoodsOnline",
    ChannelType.PAYBILL: "CustomerPayBillOnline",
    ChannelType.TILL: "CustomerBuyGoodsOnline",
    ChannelType.BANK: "CustomerPayBillOnline",
}


class PaymentChannel(Base):
    """Where a collection's money goes: the merchant's own till, paybill or bank account, or
    its payments wallet in malipo (one per mode, opened on first use)."""

    __tablename__ = "payment_channels"

    id: Mapped[int] = mapped_column(ChannelId, primary_key=True, autoincrement=True)
    client_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("clients.id"), index=True)
    mode: Mapped[str] = mapped_column(String(4))
    channel_type: Mapped[str] = mapped_column(String(10))
    short_code: Mapped[str] = mapped_column(String(20))
    account_number: Mapped[str | None] = mapped_column(String(40))
    description: Mapped[str] = mapped_column(String(200))
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    __table_args__ = (
        # One payments-wallet channel per merchant and mode.
        Index(
            "uq_payment_channels_wallet",
            "client_id",
            "mode",
            unique=True,
            postgresql_where=text("channel_type = 'wallet'"),
            sqlite_where=text("channel_type = 'wallet'"),
        ),
    )


class CollectionStatus(StrEnum):
    QUEUED = "QUEUED"  # stored; the STK push is not sent yet
    SENT = "SENT"  # Daraja accepted the push; waiting for the payer
    SUCCESS = "SUCCESS"
    FAILED = "FAILED"
    # Daraja said paid, but not what was asked (amount or payer): nothing credited, the merchant
    # not told, until an operator accepts or rejects it (malipo.reviews).
    REVIEW = "REVIEW"


FINAL_STATES = frozenset({CollectionStatus.SUCCESS, CollectionStatus.FAILED})
# States no provider answer moves any more (a review is resolved by an operator only).
CLOSED_STATES = FINAL_STATES | {CollectionStatus.REVIEW}


class CollectionPurpose(StrEnum):
    PAYMENT = "payment"  # a merchant collecting from a payer
    TOP_UP = "top_up"  # a merchant topping up its own service wallet
    CHECKOUT = "checkout"  # a payer paying on a hosted checkout page or payment link
    C2B = "c2b"  # a payer paying a paybill or till from their own phone (M-Pesa C2B)


class Collection(Base):
    __tablename__ = "collections"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    client_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("clients.id"))
    mode: Mapped[str] = mapped_column(String(4))
    api_user_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("api_users.id"))
    purpose: Mapped[str] = mapped_column(String(10))
    # Pay Hero's `reference` (what /transaction-status takes) and our CheckoutRequestID.
    reference: Mapped[str] = mapped_column(String(20), unique=True)
    checkout_request_id: Mapped[str] = mapped_column(String(60), unique=True)
    external_reference: Mapped[str | None] = mapped_column(String(100))
    channel_id: Mapped[int | None] = mapped_column(ChannelId, ForeignKey("payment_channels.id"))
    provider: Mapped[str] = mapped_column(String(20))
    network_code: Mapped[str] = mapped_column(String(10))
    phone: Mapped[str] = mapped_column(String(20))  # 2547XXXXXXXX
    amount: Mapped[int]  # minor units
    currency: Mapped[str] = mapped_column(String(3))
    fee: Mapped[int]  # minor units, held on the service wallet until the outcome
    fee_hold_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("ledger_holds.id"))
    customer_name: Mapped[str | None] = mapped_column(String(200))
    callback_url: Mapped[str | None] = mapped_column(String(2000))
    status: Mapped[str] = mapped_column(String(10))
    # SHA-256 of the secret in our CallBackURL: Daraja's callback finds the collection by it.
    callback_token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    merchant_request_id: Mapped[str | None] = mapped_column(String(60))
    provider_checkout_request_id: Mapped[str | None] = mapped_column(String(60), index=True)
    mpesa_receipt: Mapped[str | None] = mapped_column(String(30))
    result_code: Mapped[int | None] = mapped_column(Integer)
    result_desc: Mapped[str | None] = mapped_column(String(300))
    journal_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("ledger_journals.id"))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]
    completed_at: Mapped[datetime | None]

    __table_args__ = (
        # The same external_reference from the same account is one collection (NULLs do not collide).
        UniqueConstraint("client_id", "mode", "external_reference"),
        Index("ix_collections_client_created", "client_id", "mode", "created_at"),
    )
