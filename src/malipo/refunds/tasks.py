"""The outbox job of refunds: ask the rail to reverse, once; its result comes to the callback."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import func, update

from malipo.collections.models import Collection
from malipo.core.logging import get_logger
from malipo.providers.base import NotSupported, RailError, ReversalRequest
from malipo.providers.registry import mobile_money_for
from malipo.refunds import service
from malipo.refunds.models import Refund, RefundStatus
from malipo.worker.registry import JobContext, PermanentJobError, job_handler

log = get_logger("malipo.refunds")


@job_handler(service.REVERSE_JOB, max_attempts=6, base_delay=2.0, max_delay=600.0)
async def send_reversal(ctx: JobContext, payload: dict[str, Any]) -> None:
    """PENDING and unsent → sent is committed before the call: a worker that dies mid-call never
    asks twice (the result still finds the refund by its token). A request the rail certainly did
    not take is tried again (after the wait a rate limit asks for) or, refused, fails the refund."""
    try:
        refund_id = uuid.UUID(str(payload["refund_id"]))
    except (KeyError, ValueError) as exc:
        raise PermanentJobError(f"{service.REVERSE_JOB} payload has no valid refund_id: {exc}") from exc
    now = ctx.clock.now()
    async with ctx.db.transaction() as session:
        claimed = await session.execute(
            update(Refund)
            .where(Refund.id == refund_id, Refund.status == RefundStatus.PENDING, Refund.sent_at.is_(None))
            .values(sent_at=now, updated_at=now)
            .execution_options(synchronize_session=False)
        )
        if claimed.rowcount != 1:  # type: ignore[attr-defined]
            return
        refund = await session.get(Refund, refund_id)
        assert refund is not None
        collection = await session.get(Collection, refund.collection_id)
        assert collection is not None
        receipt, network_code = collection.mpesa_receipt or "", collection.network_code
        request = ReversalRequest(
            receipt=receipt, amount=refund.amount, reference=refund.reference,
            callback_token=service.callback_token(ctx.settings, refund_id), remarks=refund.reason[:100],
        )  # fmt: skip
        mode = refund.mode
    rail = mobile_money_for(ctx.settings, network_code, mode, ctx.http)
    try:
        accepted = await rail.reverse(request)
    except NotSupported as exc:
        await _fail(ctx, refund_id, service.NOT_SENT, f"not sent: {exc}")
        return
    except RailError as exc:
        if not exc.not_taken:
            # It may have reached the rail: the result (found by its token) decides; asking again could
            # reverse twice. It stays pending with its hold until the result or an operator settles it.
            log.warning("refund.send_unconfirmed", refund_id=str(refund_id), error=str(exc))
            return
        if exc.retryable and ctx.attempt < ctx.max_attempts:
            async with ctx.db.transaction() as session:  # the rail never had it: send it again later
                await session.execute(
                    update(Refund).where(Refund.id == refund_id).values(sent_at=None)
                    .execution_options(synchronize_session=False)
                )  # fmt: skip
            raise
        await _fail(ctx, refund_id, str(exc.result_code), exc.result_desc)
        return
    async with ctx.db.transaction() as session:
        await session.execute(
            update(Refund)
            .where(Refund.id == refund_id)
            .values(  # the result may have recorded them first
                conversation_id=func.coalesce(Refund.conversation_id, accepted.provider_reference),
                originator_conversation_id=func.coalesce(Refund.originator_conversation_id, accepted.our_id),
                updated_at=ctx.clock.now(),
            )
            .execution_options(synchronize_session=False)
        )  # fmt: skip
    log.info("refund.sent", refund_id=str(refund_id), conversation=accepted.provider_reference)


async def _fail(ctx: JobContext, refund_id: uuid.UUID, code: str, desc: str) -> None:
    async with ctx.db.transaction() as session:
        refund = await session.get(Refund, refund_id)
        if refund is not None:
            await service.finish(
                session, refund, succeeded=False, result_code=code, result_desc=desc, now=ctx.clock.now()
            )
