"""The outbox job that registers a channel's C2B URLs with Daraja (no call inside a transaction:
read, call, then record the answer)."""

from __future__ import annotations

from typing import Any

import httpx

from malipo.collections.c2b import repository, service
from malipo.config import Settings
from malipo.core.clock import Clock
from malipo.core.logging import get_logger
from malipo.db import Database
from malipo.providers.daraja.c2b import register_c2b_urls
from malipo.worker.registry import JobContext, PermanentJobError, job_handler

log = get_logger("malipo.c2b")


class RegistrationRefused(Exception):
    """Daraja refused for now (retryable): the job tries again."""


async def register_channel_urls(
    db: Database, settings: Settings, http: httpx.AsyncClient, clock: Clock, channel_id: int
) -> bool | None:
    """Register the C2B URLs of ``channel_id``'s shortcode and record Daraja's answer; whether it
    was registered (None: the channel has no C2B rules). Safe to run twice: registering the
    same URLs again is harmless (the sandbox replaces them; production's "already registered"
    counts as registered)."""
    async with db.transaction() as session:
        c2b = await repository.c2b_channel(session, channel_id)
        if c2b is None:
            return None
        validation_url, confirmation_url = service.registration_urls(settings, c2b)
        mode, short_code, response_type = c2b.mode, c2b.short_code, c2b.response_type
    answer = await register_c2b_urls(
        settings, mode, http, short_code=short_code, response_type=response_type,
        validation_url=validation_url, confirmation_url=confirmation_url,
    )  # fmt: skip
    if not answer.registered and answer.retryable:
        raise RegistrationRefused(
            f"Daraja did not register the C2B URLs of channel {channel_id} (will retry)"
        )
    async with db.transaction() as session:
        await service.record_registration(
            session, channel_id, registered=answer.registered, reply=answer.reply, now=clock.now()
        )
    return answer.registered


@job_handler(service.REGISTER_JOB, max_attempts=6, base_delay=2.0, max_delay=120.0)
async def register_c2b(ctx: JobContext, payload: dict[str, Any]) -> None:
    try:
        channel_id = int(payload["channel_id"])
    except (KeyError, TypeError, ValueError) as exc:
        raise PermanentJobError(f"payload has no valid channel_id: {exc}") from exc
    await register_channel_urls(ctx.db, ctx.settings, ctx.http, ctx.clock, channel_id)
