"""One ask of a rail's balance and its answer."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Index, String
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from malipo.core.ids import new_id
from malipo.db import Base


class RailBalance(Base):
    __tablename__ = "rail_balances"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    mode: Mapped[str] = mapped_column(String(4))
    rail: Mapped[str] = mapped_column(String(20))  # daraja | airtel
    party: Mapped[str] = mapped_column(String(40))  # the shortcode (or account) asked about
    status: Mapped[str] = mapped_column(String(10))  # asked | answered | failed
    # SHA-256 of the secret in Daraja's ResultURL: the answer finds its row by it.
    callback_token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    originator_conversation_id: Mapped[str | None] = mapped_column(String(100))
    conversation_id: Mapped[str | None] = mapped_column(String(60))
    # [{"name", "currency", "amounts": [minor units, in the rail's order]}]
    accounts: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON().with_variant(JSONB, "postgresql"))
    result_code: Mapped[str | None] = mapped_column(String(20))
    result_desc: Mapped[str | None] = mapped_column(String(300))
    rail_time: Mapped[str | None] = mapped_column(String(20))  # the rail's own completion time
    asked_at: Mapped[datetime]
    answered_at: Mapped[datetime | None]

    __table_args__ = (Index("ix_rail_balances_latest", "mode", "rail", "party", "asked_at"),)
