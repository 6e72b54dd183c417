"""The outbox: jobs written in the caller's transaction, and every attempt at them."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from malipo.core.ids import new_id
from malipo.db import Base


class JobStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    DEAD = "dead"


class AttemptOutcome(StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    # The worker shut down before the job finished; it went back to the queue.
    RELEASED = "released"
    # The worker holding the job stopped renewing its lease (it died); another took it.
    LEASE_EXPIRED = "lease_expired"


class Job(Base):
    __tablename__ = "outbox_jobs"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    kind: Mapped[str] = mapped_column(String(100))
    payload: Mapped[dict[str, Any]]
    status: Mapped[str] = mapped_column(String(16), default=JobStatus.PENDING)
    attempts: Mapped[int] = mapped_column(default=0)
    max_attempts: Mapped[int]
    # For a pending job: when it is due. For a running one: when its lease expires,
    # after which any worker may take it again. One column, so one index serves both.
    run_at: Mapped[datetime]
    lease_token: Mapped[uuid.UUID | None]
    locked_by: Mapped[str | None] = mapped_column(String(200))
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]

    __table_args__ = (Index("ix_outbox_jobs_status_run_at", "status", "run_at"),)


class JobAttempt(Base):
    __tablename__ = "outbox_job_attempts"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    job_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("outbox_jobs.id", ondelete="CASCADE"), index=True)
    number: Mapped[int]
    worker: Mapped[str] = mapped_column(String(200))
    lease_token: Mapped[uuid.UUID]
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]
    # None while the attempt is running.
    outcome: Mapped[str | None] = mapped_column(String(16))
    error: Mapped[str | None] = mapped_column(Text)
