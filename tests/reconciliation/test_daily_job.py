"""The daily run: queued once at start for the configured hour of the next day, reconciling the
day before in both modes, then queueing the next day's."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
from sqlalchemy import select

from malipo.core.clock import SystemClock
from malipo.reconciliation import service, tasks
from malipo.worker.models import Job
from malipo.worker.registry import JobContext
from tests.fixtures.world import Sim, StartMalipo, World
from tests.reconciliation.helpers import reconciling_world


async def _daily_jobs(world: World) -> list[Job]:
    async with world.db.transaction() as session:
        rows = await session.scalars(select(Job).where(Job.kind == tasks.DAILY_JOB).order_by(Job.run_at))
        return list(rows.all())


async def test_the_daily_run_is_queued_once_and_reconciles_the_day_before(
    start_malipo: StartMalipo, own_sim: Sim
) -> None:
    world = await reconciling_world(start_malipo, own_sim, reconciliation_daily=True, reconciliation_hour=3)
    await tasks.ensure_daily(world.db, world.settings, SystemClock())  # a second process starting
    [job] = await _daily_jobs(world)
    zone = ZoneInfo(world.settings.reconciliation_timezone)
    due = job.run_at.astimezone(zone)
    now = datetime.now(zone)
    assert (due.hour, due.minute) == (3, 0)
    assert timedelta(0) < due - now <= timedelta(days=1)
    assert job.payload == {"day": (due.date() - timedelta(days=1)).isoformat()}

    # What the worker does when it comes due (run here, now: the day before today is within 48 h).
    yesterday = (now - timedelta(days=1)).date()
    async with httpx.AsyncClient(timeout=30) as http:
        context = JobContext(job.id, tasks.DAILY_JOB, 1, 5, world.db, SystemClock(), world.settings, http)
        await tasks.reconcile_previous_day(context, {"day": yesterday.isoformat()})
    async with world.db.transaction() as session:
        for mode in ("live", "test"):
            report = await service.report(session, yesterday, mode)
            assert report.run.status == "complete", report.run.notes
    assert len(await _daily_jobs(world)) == 1, "the next day's is the one already queued"
