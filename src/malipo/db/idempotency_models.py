"""Stored replies of requests made with an ``Idempotency-Key``."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from malipo.core.ids import new_id
from malipo.db import Base


class IdempotencyRecord(Base):
    __tablename__ = "idempotency_keys"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    # Who the key belongs to ("api_key:<api user id>", "customer:<id>" …): keys are per caller.
    scope: Mapped[str] = mapped_column(String(100))
    key: Mapped[str] = mapped_column(String(255))
    # SHA-256 of method, path and body: the same key with another request is refused.
    request_hash: Mapped[str] = mapped_column(String(64))
    # in_flight while the first request runs; done once its reply is stored.
    status: Mapped[str] = mapped_column(String(10))
    response_status: Mapped[int | None]
    response_body: Mapped[str | None] = mapped_column(Text)
    # An in-flight record older than this was left by a process that died: it may be retaken.
    locked_until: Mapped[datetime]
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime] = mapped_column(index=True)

    __table_args__ = (UniqueConstraint("scope", "key"),)
