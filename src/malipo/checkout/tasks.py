"""Outbox jobs of checkout sessions: expire one not paid in time."""

from __future__ import annotations

import uuid
from typing import Any

from malipo.checkout import service
from malipo.worker.registry import JobContext, PermanentJobError, enqueue, job_handler


@job_handler(service.EXPIRE_JOB, max_attempts=5, base_delay=5.0, max_delay=120.0)
async def expire_session(ctx: JobContext, payload: dict[str, Any]) -> None:
    """OPEN past its expiry: EXPIRED (and the merchant told). Still PENDING: looked at again later
    (an M-Pesa attempt's outcome may still come; its collection is settled by its own jobs)."""
    try:
        session_id = uuid.UUID(str(payload["session_id"]))
    except (KeyError, ValueError) as exc:
        raise PermanentJobError(f"{service.EXPIRE_JOB} payload has no valid session_id: {exc}") from exc
    now = ctx.clock.now()
    async with ctx.db.transaction() as session:
        again = await service.expire(session, session_id, now=now)
        if again is not None:
            enqueue(session, service.EXPIRE_JOB, {"session_id": str(session_id)}, now=now, delay=again)
