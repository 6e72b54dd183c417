"""Outbox jobs of collections: send the STK push; ask Daraja when no callback came."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import update

from malipo.collections import service
from malipo.collections.models import FINAL_STATES, Collection, CollectionStatus
from malipo.core.logging import get_logger
from malipo.providers.daraja.client import DarajaError, DarajaPending, surely_not_taken
from malipo.providers.registry import daraja_client
from malipo.worker.registry import JobContext, PermanentJobError, enqueue, job_handler

log = get_logger("malipo.collections")

# STK queries before a collection nobody answers is settled as failed (1037: no answer).
MAX_QUERIES = 5


def _collection_id(payload: dict[str, Any]) -> uuid.UUID:
    try:
        return uuid.UUID(str(payload["collection_id"]))
    except (KeyError, ValueError) as exc:
        raise PermanentJobError(f"payload has no valid collection_id: {exc}") from exc


@job_handler(service.SEND_JOB, max_attempts=6, base_delay=2.0, max_delay=60.0)
async def send_stk_push(ctx: JobContext, payload: dict[str, Any]) -> None:
    """Send the push once: the collection moves QUEUED → SENT before the call (committed), so a
    worker that dies mid-call never pushes twice; Daraja's callback still finds it by its token."""
    collection_id = _collection_id(payload)
    token = str(payload.get("token", ""))
    now = ctx.clock.now()
    async with ctx.db.transaction() as session:
        claimed = await session.execute(
            update(Collection)
            .where(Collection.id == collection_id, Collection.status == CollectionStatus.QUEUED)
            .values(status=CollectionStatus.SENT, sent_at=now, updated_at=now)
            .returning(Collection.phone, Collection.amount, Collection.reference, Collection.mode)
            .execution_options(synchronize_session=False)
        )
        row = claimed.first()
        if row is not None:
            # Scheduled with the claim, not after Daraja's reply: if this worker dies mid-call,
            # the STK query still comes and no collection stays SENT forever.
            enqueue(
                session, service.RECONCILE_JOB, {"collection_id": str(collection_id), "query": 1},
                now=now, delay=service.reconcile_delay(ctx.settings),
            )  # fmt: skip
    if row is None:
        log.info("collection.not_queued", collection_id=str(collection_id))
        return
    client = daraja_client(ctx.settings, row.mode, ctx.http)
    try:
        await client.access_token()
    except DarajaError as exc:  # no push was sent: retry or fail it, as Daraja's answer says
        await _after_refusal(ctx, collection_id, exc, pushed=False)
        return
    try:
        reply = await client.stk_push(
            amount=row.amount // 100,
            phone=row.phone,
            account_reference=row.reference,
            description=f"Payment {row.reference}",
            callback_url=service.callback_url(ctx.settings, token),
        )
    except DarajaError as exc:
        await _after_refusal(ctx, collection_id, exc)
        return
    async with ctx.db.transaction() as session:
        await session.execute(
            update(Collection)
            .where(Collection.id == collection_id)
            .values(
                merchant_request_id=reply.MerchantRequestID,
                provider_checkout_request_id=reply.CheckoutRequestID,
                updated_at=ctx.clock.now(),
            )
            .execution_options(synchronize_session=False)
        )
    log.info("collection.sent", collection_id=str(collection_id), checkout=reply.CheckoutRequestID)


async def _after_refusal(
    ctx: JobContext, collection_id: uuid.UUID, exc: DarajaError, *, pushed: bool = True
) -> None:
    if pushed and not surely_not_taken(exc):
        # Pushing again could charge the payer twice, failing it could drop a payment: it stays
        # SENT, Daraja's callback still finds it by its token, else the reconcile job ends it.
        log.warning("collection.send_unconfirmed", collection_id=str(collection_id), error=str(exc))
        return
    if exc.retryable and ctx.attempt < ctx.max_attempts:
        # Daraja never had it (unreachable, busy, no token): put it back and let the worker retry.
        async with ctx.db.transaction() as session:
            await session.execute(
                update(Collection)
                .where(Collection.id == collection_id, Collection.status == CollectionStatus.SENT)
                .values(status=CollectionStatus.QUEUED, sent_at=None)
                .execution_options(synchronize_session=False)
            )
        raise exc
    async with ctx.db.transaction() as session:
        collection = await session.get(Collection, collection_id)
        if collection is None:
            return
        desc = exc.error_message or str(exc)
        await service.finish(
            session,
            collection,
            service.Outcome(1, f"M-Pesa refused the request: {desc}"),
            now=ctx.clock.now(),
        )


@job_handler(service.RECONCILE_JOB, max_attempts=10, base_delay=5.0, max_delay=300.0)
async def reconcile(ctx: JobContext, payload: dict[str, Any]) -> None:
    """No callback in time: ask Daraja (STK query) and settle the state from its answer."""
    collection_id = _collection_id(payload)
    query_number = int(payload.get("query", 1))
    async with ctx.db.transaction() as session:
        collection = await session.get(Collection, collection_id)
        if collection is None or collection.status in FINAL_STATES:
            return
        mode, checkout = collection.mode, collection.provider_checkout_request_id
    outcome: service.Outcome | None = None
    if checkout is None:
        # Not sent yet (a retry is pending), or its worker died before Daraja's reply: nothing
        # to ask Daraja about. Wait for a callback a while longer, then give up.
        if query_number >= MAX_QUERIES:
            outcome = service.Outcome(1037, "No answer from M-Pesa for this request")
    else:
        try:
            answer = await daraja_client(ctx.settings, mode, ctx.http).stk_query(checkout)
            # STK query descriptions carry a "[STK_CB - ]" prefix the callbacks do not.
            outcome = service.Outcome(
                int(answer.ResultCode), answer.ResultDesc.removeprefix("[STK_CB - ]").strip()
            )
        except DarajaPending:
            if query_number >= MAX_QUERIES:
                outcome = service.Outcome(1037, "The payer did not answer the M-Pesa prompt in time")
        except DarajaError as exc:
            # No answer to the query (Daraja down, or it no longer knows the push): ask again
            # later, and after the last query give up, rather than leave the collection open.
            log.warning("collection.query_failed", collection_id=str(collection_id), error=str(exc))
            if query_number >= MAX_QUERIES:
                outcome = service.Outcome(1037, "No answer from M-Pesa for this request")
    async with ctx.db.transaction() as session:
        collection = await session.get(Collection, collection_id)
        if collection is None:
            return
        if outcome is None:
            follow_up = {"collection_id": str(collection_id), "query": query_number + 1}
            enqueue(
                session, service.RECONCILE_JOB, follow_up,
                now=ctx.clock.now(), delay=service.reconcile_delay(ctx.settings),
            )  # fmt: skip
            return
        await service.finish(session, collection, outcome, now=ctx.clock.now())
