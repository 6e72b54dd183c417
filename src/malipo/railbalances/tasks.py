"""The periodic job that asks every rail for its balance (``MALIPO_RAIL_BALANCE_INTERVAL_SECONDS``)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from malipo.railbalances import service
from malipo.worker.registry import JobContext, enqueue, job_handler, periodic_interval, periodic_job


@job_handler(service.REFRESH_JOB, max_attempts=3, base_delay=30.0, max_delay=600.0)
async def refresh_rail_balances(ctx: JobContext, payload: dict[str, Any]) -> None:
    """Ask every rail; a periodic run then queues the next one (after the interval)."""
    if payload.get("periodic") and ctx.attempt == 1:
        seconds = periodic_interval(service.REFRESH_JOB, ctx.settings)
        if seconds > 0:  # queued first: a run that fails part-way still keeps the chain going
            async with ctx.db.transaction() as session:
                enqueue(
                    session, service.REFRESH_JOB, {"periodic": True}, now=ctx.clock.now(),
                    delay=timedelta(seconds=seconds),
                )  # fmt: skip
    await service.ask_all(ctx.db, ctx.settings, ctx.http, ctx.clock)


periodic_job(service.REFRESH_JOB, lambda settings: settings.rail_balance_interval_seconds)
