"""A merchant's own tariff for one kind of transaction (collections or payouts).

Stored as integers, never as text or floats:

- ``percent_bp``: the percentage in basis points (``150`` is 1.5 %, ``10000`` is 100 %);
- ``fixed``, ``minimum``, ``maximum``: minor units (cents) of the transaction's currency
  (``1500`` is KES 15.00).

The fee of an amount is ``percent`` of it plus ``fixed``, kept within ``[minimum, maximum]``.
A merchant without a row for a kind pays the defaults from settings (``MALIPO_*_FEE_*``).
A tariff applies to the merchant's sandbox and live transactions alike.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from malipo.core.ids import new_id
from malipo.db import Base


class PricingKind(StrEnum):
    COLLECTION = "collection"
    PAYOUT = "payout"
    CARD = "card"  # a card capture (hosted checkout or the cards API), taken from the captured amount


class MerchantPricing(Base):
    __tablename__ = "merchant_pricing"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    client_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("clients.id"))
    kind: Mapped[str] = mapped_column(String(10))
    percent_bp: Mapped[int] = mapped_column(Integer)  # basis points: 150 = 1.5 %
    fixed: Mapped[int]  # minor units
    minimum: Mapped[int]  # minor units
    maximum: Mapped[int]  # minor units
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    __table_args__ = (UniqueConstraint("client_id", "kind"),)
