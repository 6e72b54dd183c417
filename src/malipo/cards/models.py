"""The card vault's tokens and the card authorisations made with them."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from malipo.core.ids import new_id
from malipo.db import Base


class AuthorizationStatus(StrEnum):
    # The row and its hold are committed; the acquirer has not answered yet (or the answer was lost:
    # the reconcile job asks it).
    AUTHORIZING = "authorizing"
    PENDING_3DS = "pending_3ds"  # the payer must pass the issuer's challenge (acsUrl)
    AUTHORIZED = "authorized"  # approved: the amount held until captured, voided or expired
    CAPTURED = "captured"  # captured in full or in part (one capture), the rest released
    PARTIALLY_REFUNDED = "partially_refunded"
    REFUNDED = "refunded"
    DECLINED = "declined"  # the issuer said no (responseCode): the hold released
    FAILED_3DS = "failed_3ds"  # the payer did not authenticate: the hold released
    FAILED = "failed"  # the acquirer could not be reached or refused the request: the hold released
    VOIDED = "voided"
    EXPIRED = "expired"  # not captured within 7 days: the hold released


HOLDING = frozenset(
    {AuthorizationStatus.AUTHORIZING, AuthorizationStatus.PENDING_3DS, AuthorizationStatus.AUTHORIZED}
)
REFUNDABLE = frozenset({AuthorizationStatus.CAPTURED, AuthorizationStatus.PARTIALLY_REFUNDED})


class CardToken(Base):
    """A tokenised card. The PAN only as AES-GCM ciphertext (``pan_ciphertext``, its key id beside
    it for rotation) and as a keyed HMAC fingerprint; the CVV never (see ``malipo.cards.vault``)."""

    __tablename__ = "card_tokens"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    token: Mapped[str] = mapped_column(String(40), unique=True)
    client_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("clients.id"))
    mode: Mapped[str] = mapped_column(String(4))
    brand: Mapped[str] = mapped_column(String(12))
    bin: Mapped[str] = mapped_column(String(8))
    last4: Mapped[str] = mapped_column(String(4))
    expiry_month: Mapped[int] = mapped_column(Integer)
    expiry_year: Mapped[int] = mapped_column(Integer)
    pan_ciphertext: Mapped[str] = mapped_column(String(200))
    key_id: Mapped[str] = mapped_column(String(16))
    fingerprint: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]

    __table_args__ = (Index("ix_card_tokens_fingerprint", "client_id", "mode", "fingerprint"),)


class CardAuthorization(Base):
    __tablename__ = "card_authorizations"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    client_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("clients.id"))
    mode: Mapped[str] = mapped_column(String(4))
    token_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("card_tokens.id"))
    # Ours, sent to the acquirer as the authorisation's reference and idempotency key.
    reference: Mapped[str] = mapped_column(String(40), unique=True)
    order_id: Mapped[str | None] = mapped_column(String(64))
    amount: Mapped[int]  # minor units
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(20))
    brand: Mapped[str] = mapped_column(String(12))
    bin: Mapped[str] = mapped_column(String(8))
    last4: Mapped[str] = mapped_column(String(4))
    hold_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("ledger_holds.id"))
    captured_amount: Mapped[int]
    refunded_amount: Mapped[int]
    refunds: Mapped[int] = mapped_column(Integer)  # how many refunds (names the next refund id)
    fee: Mapped[int]  # charged on the capture
    response_code: Mapped[str | None] = mapped_column(String(4))
    response_desc: Mapped[str | None] = mapped_column(String(200))
    auth_code: Mapped[str | None] = mapped_column(String(12))
    acquirer_reference: Mapped[str | None] = mapped_column(String(64))
    acs_url: Mapped[str | None] = mapped_column(String(500))
    three_ds_trans_id: Mapped[str | None] = mapped_column(String(64))
    trans_status: Mapped[str | None] = mapped_column(String(1))
    eci: Mapped[str | None] = mapped_column(String(2))
    capture_journal_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("ledger_journals.id"))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    authorized_at: Mapped[datetime | None]
    captured_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]  # declined, failed, voided, expired or refunded in full

    __table_args__ = (Index("ix_card_authorizations_client_created", "client_id", "mode", "created_at"),)
