"""Outbox jobs of reconciliation: the daily run (the previous day, both modes), which queues the
next day's; and a refund's reversal, sent after the resolution committed."""

from __future__ import annotations

import uuid
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from malipo.config import Settings
from malipo.core.clock import Clock
from malipo.core.logging import get_logger
from malipo.db import Database
from malipo.providers.base import NotSupported, RailError
from malipo.providers.registry import mobile_money_for
from malipo.reconciliation import resolutions, service
from malipo.worker.models import Job
from malipo.worker.registry import BatchContext, JobContext, PermanentJobError, enqueue, job_handler

log = get_logger("malipo.reconciliation")

DAILY_JOB = "reconciliation.daily"
MODES = ("live", "test")


def _daily_job_id(day: date) -> uuid.UUID:
    # One job per day, whichever process queues it: a second insert is refused by the primary key.
    return uuid.uuid5(uuid.NAMESPACE_URL, f"malipo:{DAILY_JOB}:{day.isoformat()}")


def next_daily_run(settings: Settings, now: datetime) -> tuple[datetime, date]:
    """When the next daily run is due (the configured hour of the operator's day) and the day it
    reconciles (the one before)."""
    zone = ZoneInfo(settings.reconciliation_timezone)
    local = now.astimezone(zone)
    due = datetime.combine(local.date(), time(settings.reconciliation_hour), zone)
    if due <= local:
        due += timedelta(days=1)
    return due, due.date() - timedelta(days=1)


async def schedule_daily(session: AsyncSession, settings: Settings, now: datetime) -> None:
    """Queue the next daily run unless it is queued already."""
    due, day = next_daily_run(settings, now)
    job_id = _daily_job_id(day)
    if await session.get(Job, job_id) is not None:
        return
    try:
        async with session.begin_nested():
            job = enqueue(session, DAILY_JOB, {"day": day.isoformat()}, now=now, delay=due - now)
            job.id = job_id
    except IntegrityError:  # another process queued it first
        log.info("reconciliation.daily_already_queued", day=day.isoformat())


async def ensure_daily(db: Database, settings: Settings, clock: Clock) -> None:
    """At start: the daily run is queued (when ``MALIPO_RECONCILIATION_DAILY``)."""
    if not settings.reconciliation_daily:
        return
    async with db.transaction() as session:
        await schedule_daily(session, settings, clock.now())


@job_handler(DAILY_JOB, max_attempts=5, base_delay=300.0, max_delay=3600.0)
async def reconcile_previous_day(ctx: JobContext, payload: dict[str, Any]) -> None:
    try:
        day = date.fromisoformat(str(payload["day"]))
    except (KeyError, ValueError) as exc:
        raise PermanentJobError(f"payload has no valid day: {exc}") from exc
    batch = BatchContext(ctx.db, ctx.clock, ctx.settings, ctx.http)
    for mode in MODES:
        result = await service.reconcile_day(batch, day, mode)
        for rail, note in result.run.notes.items():
            log.warning("reconciliation.incomplete", day=day.isoformat(), mode=mode, rail=rail, note=note)
    if ctx.settings.reconciliation_daily:
        async with ctx.db.transaction() as session:
            await schedule_daily(session, ctx.settings, ctx.clock.now())


@job_handler(resolutions.REVERSE_JOB, max_attempts=10, base_delay=30.0, max_delay=3600.0)
async def send_reversal(ctx: JobContext, payload: dict[str, Any]) -> None:
    """Ask the rail to reverse a refunded receipt; its result settles the item later (or now,
    when the rail's reply carries it)."""
    try:
        item_id = uuid.UUID(str(payload["item_id"]))
    except (KeyError, ValueError) as exc:
        raise PermanentJobError(f"payload has no valid item_id: {exc}") from exc
    async with ctx.db.transaction() as session:
        found = await resolutions.reversal_to_send(session, item_id, ctx.settings)
    if found is None:
        return
    network, mode, request = found
    rail = mobile_money_for(ctx.settings, network, mode, ctx.http)
    try:
        accepted = await rail.reverse(request)
    except (NotSupported, RailError) as exc:
        final = isinstance(exc, NotSupported) or (exc.not_taken and not exc.retryable)
        if not final:
            raise
        async with ctx.db.transaction() as session:
            await resolutions.complete_refund(session, item_id, succeeded=False, now=ctx.clock.now())
        raise PermanentJobError(f"the rail refused the reversal: {exc}") from exc
    async with ctx.db.transaction() as session:
        await resolutions.record_refund_sent(session, item_id, accepted.provider_reference, ctx.clock.now())
