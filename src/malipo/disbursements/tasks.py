"""Outbox job of disbursement batches: pay the next chunk of a batch's Pending items.

Each run is one transaction: the chunk's holds, payouts, send jobs, item moves and attempts, and
the next run's job when items are left. A worker that dies midway leaves nothing of its chunk
(the transaction never committed) and the job runs again after its lease: no item is paid twice.
"""

from __future__ import annotations

import uuid
from typing import Any

from malipo.core.logging import get_logger
from malipo.disbursements import service
from malipo.worker.registry import JobContext, PermanentJobError, job_handler

log = get_logger("malipo.disbursements")


@job_handler(service.PROCESS_JOB, max_attempts=10, base_delay=2.0, max_delay=60.0)
async def process_chunk(ctx: JobContext, payload: dict[str, Any]) -> None:
    try:
        batch_id = uuid.UUID(str(payload["batch_id"]))
    except (KeyError, ValueError) as exc:
        raise PermanentJobError(f"{service.PROCESS_JOB} payload has no valid batch_id: {exc}") from exc
    async with ctx.db.transaction() as session:
        taken, more = await service.process_chunk(
            session, batch_id, settings=ctx.settings, now=ctx.clock.now()
        )
    log.info("disbursements.chunk", batch=str(batch_id), items=taken, more=more)
