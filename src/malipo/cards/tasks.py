"""Outbox jobs of card authorisations: release an uncaptured hold after 7 days, and settle an
authorisation whose acquirer answer never got recorded (the process died during the call)."""

from __future__ import annotations

import uuid
from typing import Any

from malipo.cards import repository, service
from malipo.cards.models import AuthorizationStatus
from malipo.providers.registry import card_acquirer_for
from malipo.worker.registry import JobContext, PermanentJobError, job_handler


def _authorization_id(kind: str, payload: dict[str, Any]) -> uuid.UUID:
    try:
        return uuid.UUID(str(payload["authorization_id"]))
    except (KeyError, ValueError) as exc:
        raise PermanentJobError(f"{kind} payload has no valid authorization_id: {exc}") from exc


@job_handler(service.EXPIRE_JOB, max_attempts=5, base_delay=5.0, max_delay=120.0)
async def expire_authorization(ctx: JobContext, payload: dict[str, Any]) -> None:
    authorization_id = _authorization_id(service.EXPIRE_JOB, payload)
    async with ctx.db.transaction() as session:
        await service.expire(session, authorization_id, now=ctx.clock.now())


@job_handler(service.RECONCILE_JOB, max_attempts=8, base_delay=30.0, max_delay=600.0)
async def reconcile_authorization(ctx: JobContext, payload: dict[str, Any]) -> None:
    """Still AUTHORIZING: ask the acquirer (outside any transaction) and record what it says; an
    unreachable acquirer raises, so the job runs again later."""
    authorization_id = _authorization_id(service.RECONCILE_JOB, payload)
    async with ctx.db.transaction() as session:
        auth = await repository.authorization_by_id(session, authorization_id)
    if auth is None or auth.status != AuthorizationStatus.AUTHORIZING:
        return
    outcome = await card_acquirer_for(ctx.settings, auth.mode, ctx.http).query(auth.reference)
    if outcome.status == service.CardStatus.UNKNOWN and not outcome.not_found:
        raise RuntimeError(f"the card acquirer could not be asked about {auth.reference}: {outcome.error}")
    async with ctx.db.transaction() as session:
        await service.reconcile(session, authorization_id, outcome, now=ctx.clock.now())
