"""A reconciliation run (one per day and mode) and its items: each rail transaction or malipo
record, matched or an exception, and how an exception was resolved."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import BigInteger, Date, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from malipo.core.ids import new_id
from malipo.db import Base


class ItemKind(StrEnum):
    MATCHED = "matched"
    # Money at the rail with no record in malipo: booked into suspense at once.
    MISSING_IN_MALIPO = "missing_in_malipo"
    # Credited by malipo; the rail has no such receipt.
    MISSING_AT_RAIL = "missing_at_rail"
    AMOUNT_MISMATCH = "amount_mismatch"


EXCEPTION_KINDS = (ItemKind.MISSING_IN_MALIPO, ItemKind.MISSING_AT_RAIL, ItemKind.AMOUNT_MISMATCH)


class ItemStatus(StrEnum):
    MATCHED = "matched"  # nothing to resolve
    OPEN = "open"
    PENDING = "pending"  # a refund asked of the rail, its result not in yet
    RESOLVED = "resolved"


class Resolution(StrEnum):
    ATTACH = "attach"
    WRITE_OFF = "write_off"
    REFUND = "refund"


class ReconciliationRun(Base):
    __tablename__ = "reconciliation_runs"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    day: Mapped[date] = mapped_column(Date)
    mode: Mapped[str] = mapped_column(String(4))
    status: Mapped[str] = mapped_column(String(12))  # complete, failed
    # Why a rail's part could not be reconciled (a statement out of its window), per rail.
    notes: Mapped[dict[str, Any]]
    totals: Mapped[dict[str, Any]]
    runs: Mapped[int] = mapped_column(default=1)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    __table_args__ = (UniqueConstraint("day", "mode"),)


class ReconciliationItem(Base):
    __tablename__ = "reconciliation_items"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    run_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("reconciliation_runs.id"))
    # What the item is about, unique in its run: ``receipt:<receipt>`` or ``collection:<id>``.
    match_key: Mapped[str] = mapped_column(String(80))
    kind: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(10))
    rail: Mapped[str] = mapped_column(String(20))
    currency: Mapped[str] = mapped_column(String(3))
    receipt: Mapped[str | None] = mapped_column(String(40))
    rail_amount: Mapped[int | None] = mapped_column(BigInteger)
    malipo_amount: Mapped[int | None] = mapped_column(BigInteger)
    party: Mapped[str | None] = mapped_column(String(40))
    bill_reference: Mapped[str | None] = mapped_column(String(100))
    rail_time: Mapped[datetime | None]
    collection_id: Mapped[uuid.UUID | None]
    payout_id: Mapped[uuid.UUID | None]
    client_id: Mapped[uuid.UUID | None]
    detail: Mapped[str] = mapped_column(String(300))
    # The journal that booked a missing-in-malipo receipt into suspense.
    suspense_journal_id: Mapped[uuid.UUID | None]
    resolution: Mapped[str | None] = mapped_column(String(12))
    resolution_note: Mapped[str | None] = mapped_column(Text)
    resolution_journal_id: Mapped[uuid.UUID | None]
    resolution_reference: Mapped[str | None] = mapped_column(String(80))  # the rail's reversal id
    resolved_by: Mapped[uuid.UUID | None]
    resolved_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    __table_args__ = (
        UniqueConstraint("run_id", "match_key"),
        Index("ix_reconciliation_items_run_kind", "run_id", "kind"),
    )
