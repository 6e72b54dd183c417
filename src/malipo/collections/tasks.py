"""Outbox jobs of collections: send the push through the network's rail; ask the rail when no
callback came."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from malipo.collections import repository, service
from malipo.collections.models import CLOSED_STATES
from malipo.core.logging import get_logger
from malipo.providers.base import (
    MobileMoney,
    ProviderUnavailable,
    PushAccepted,
    PushRequest,
    RailError,
    Status,
)
from malipo.providers.registry import mobile_money_for
from malipo.worker.registry import (
    BatchContext,
    BatchItem,
    PermanentJobError,
    batch_job_handler,
    enqueue,
    enqueue_many,
)

log = get_logger("malipo.collections")

# Queries before a collection nobody answers is settled as failed (the rail's "no answer").
MAX_QUERIES = 5


def _collection_id(payload: dict[str, Any]) -> uuid.UUID:
    try:
        return uuid.UUID(str(payload["collection_id"]))
    except (KeyError, ValueError) as exc:
        raise PermanentJobError(f"payload has no valid collection_id: {exc}") from exc


def _rail(ctx: BatchContext, collection_id: uuid.UUID, network_code: str, mode: str) -> MobileMoney | None:
    """The rail of ``network_code``; None, logged, for a network no rail serves (T-Kash, whose
    collections were queued before intake refused it): nothing can push those."""
    try:
        return mobile_money_for(ctx.settings, network_code, mode, ctx.http)
    except ProviderUnavailable as exc:
        log.warning(
            "collection.no_rail", collection_id=str(collection_id), network_code=network_code, reason=str(exc)
        )
        return None


@batch_job_handler(service.SEND_JOB, max_attempts=6, base_delay=2.0, max_delay=60.0)
async def send_stk_pushes(ctx: BatchContext, items: list[BatchItem]) -> dict[uuid.UUID, BaseException]:
    """Send each push once: the collections move QUEUED → SENT before the calls (committed, one
    transaction for the batch), so a worker that dies mid-call never pushes twice; the rail's
    callback still finds each by its token. The pushes go out together; the rail's ids are stored
    in one transaction after."""
    failed: dict[uuid.UUID, BaseException] = {}
    wanted: dict[uuid.UUID, BatchItem] = {}
    for item in items:
        try:
            wanted[_collection_id(item.payload)] = item
        except PermanentJobError as exc:
            failed[item.job_id] = exc
    if not wanted:
        return failed
    now = ctx.clock.now()
    async with ctx.db.transaction() as session:
        # Claimed without sent_at: that is set, in a transaction of its own, just before each push
        # is made (``_marked``). SENT without sent_at is a claim whose push was never made.
        rows = await repository.claim_queued(session, list(wanted), now)
        claimed = {row.id for row in rows}
        found = {row.id: _rail(ctx, row.id, row.network_code, row.mode) for row in rows}
        rails = {cid: rail for cid, rail in found.items() if rail is not None}
        if len(rails) < len(rows):  # ended with the claim: no retry could ever push them
            await _end_unpushed(session, [cid for cid in found if cid not in rails], ctx)
            rows = [row for row in rows if row.id in rails]
        # Scheduled with the claim, not after the rail's reply: if this worker dies mid-call,
        # the STK query still comes and no collection stays SENT forever.
        await enqueue_many(
            session, service.RECONCILE_JOB, [{"collection_id": str(row.id), "query": 1} for row in rows],
            now=now, delays=[service.reconcile_delay(ctx.settings)] * len(rows),
        )  # fmt: skip
    if len(claimed) < len(wanted):
        async with ctx.db.transaction() as session:
            await _end_unpushed(session, [cid for cid in wanted if cid not in claimed], ctx)
    results = await _push_all(ctx, wanted, rows, rails)
    stored = []
    for row, result in zip(rows, results, strict=True):
        if isinstance(result, BaseException):
            failed[wanted[row.id].job_id] = result
        elif result is not None:
            stored.append((row.id, result.provider_request_id, result.provider_reference, ctx.clock.now()))
    if stored:
        async with ctx.db.transaction() as session:
            await repository.store_rail_ids(session, stored)
        log.info("collection.sent", count=len(stored))
    return failed


async def _push_all(
    ctx: BatchContext, wanted: dict[uuid.UUID, BatchItem], rows: list[Any],
    rails: dict[uuid.UUID, MobileMoney],
) -> list[PushAccepted | BaseException | None]:  # fmt: skip
    """Push each claimed collection, as many at a time as the HTTP client has connections. Before
    each group goes out, its collections get their sent_at in one committed transaction: a worker
    killed between its claim and its pushes leaves the unpushed ones without it, and they end
    NOT_SENT (``_end_unpushed``) rather than as pushes nobody answered."""
    results: dict[uuid.UUID, PushAccepted | BaseException | None] = {}
    waiting = list(rows)
    running: dict[asyncio.Task[PushAccepted | None], uuid.UUID] = {}
    slots = max(1, ctx.settings.http_connections)
    while waiting or running:
        free = slots - len(running)
        # Refilled when half the connections are free, not at each reply: a stamp per push would be
        # a transaction per push.
        group: list[Any] = []
        if waiting and (not running or free >= max(1, slots // 2)):
            group, waiting = waiting[:free], waiting[free:]
        if group:
            marked = await _marked(ctx, [row.id for row in group])
            for row in group:
                if row.id in marked:
                    running[asyncio.ensure_future(_push(ctx, wanted[row.id], row, rails[row.id]))] = row.id
                else:  # ended meanwhile (given up as not sent): never pushed
                    results[row.id] = None
        if not running:
            continue
        try:
            done, _pending = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
        except BaseException:  # cancelled (the worker stops): so are the pushes in flight
            for task in running:
                task.cancel()
            raise
        for task in done:
            collection_id = running.pop(task)
            exc = task.exception()
            results[collection_id] = exc if exc is not None else task.result()
    return [results[row.id] for row in rows]


async def _marked(ctx: BatchContext, ids: list[uuid.UUID]) -> set[uuid.UUID]:
    """Stamp sent_at on those still SENT without one, just before their pushes: the ones stamped."""
    async with ctx.db.transaction() as session:
        return await repository.stamp_sent(session, ids, ctx.clock.now())


async def _end_unpushed(session: AsyncSession, ids: list[uuid.UUID], ctx: BatchContext) -> None:
    """Those of ``ids`` claimed (SENT) and never pushed (no sent_at) end NOT_SENT: an earlier run's
    worker died, or lost its lease, between the claim and the push (pushing now, a lease later,
    would prompt a payer who has likely gone), or no rail serves their network. The payer was
    never prompted. Locked first: a run still alive cannot stamp (and push) one that ends here."""
    for collection in await repository.locked_unpushed(session, ids):
        if await service.finish(
            session, collection, service.Outcome(service.NOT_SENT, service.NOT_SENT_DESC), now=ctx.clock.now()
        ):
            log.warning(
                "collection.not_sent", collection_id=str(collection.id), reference=collection.reference
            )


async def _push(ctx: BatchContext, item: BatchItem, row: Any, rail: MobileMoney) -> PushAccepted | None:
    """The rail's acceptance, or None when the push was refused (handled here)."""
    # Jobs queued before the token was derived carry it.
    token = str(item.payload.get("token") or service.callback_token(ctx.settings, row.id))
    request = PushRequest(
        reference=row.reference, amount=row.amount, phone=row.phone, callback_token=token,
        description=f"Payment {row.reference}",
    )  # fmt: skip
    try:
        return await rail.push_collection(request)
    except RailError as exc:
        await _after_refusal(ctx, item, row.id, exc)
        return None


async def _after_refusal(
    ctx: BatchContext, item: BatchItem, collection_id: uuid.UUID, exc: RailError
) -> None:
    if not exc.not_taken:
        # Pushing again could charge the payer twice, failing it could drop a payment: it stays
        # SENT, the rail's callback still finds it by its token, else the reconcile job ends it.
        log.warning("collection.send_unconfirmed", collection_id=str(collection_id), error=str(exc))
        return
    if exc.retryable and item.attempt < item.max_attempts:
        # The rail never had it (unreachable, busy, no token): put it back and let the worker retry.
        async with ctx.db.transaction() as session:
            await repository.requeue_sent(session, collection_id)
        raise exc
    async with ctx.db.transaction() as session:
        collection = await repository.by_id(session, collection_id)
        if collection is None:
            return
        # The outcome the rail records for a refused push.
        outcome = service.Outcome(exc.result_code, exc.result_desc)
        await service.finish(session, collection, outcome, now=ctx.clock.now())


@batch_job_handler(service.RECONCILE_JOB, max_attempts=10, base_delay=5.0, max_delay=300.0)
async def reconcile_many(ctx: BatchContext, items: list[BatchItem]) -> dict[uuid.UUID, BaseException]:
    """The reconcile jobs that came due together: those whose collection is final already (nearly
    all: the callback came) end with one query; each of the others is asked about on its own."""
    failed: dict[uuid.UUID, BaseException] = {}
    wanted: dict[uuid.UUID, uuid.UUID] = {}
    for item in items:
        try:
            wanted[item.job_id] = _collection_id(item.payload)
        except PermanentJobError as exc:
            failed[item.job_id] = exc
    if not wanted:
        return failed
    async with ctx.db.transaction() as session:
        still_open = await repository.open_ids(session, set(wanted.values()))
    pending = [item for item in items if wanted.get(item.job_id) in still_open]
    results = await asyncio.gather(
        *(reconcile(ctx, item.payload) for item in pending), return_exceptions=True
    )
    for item, result in zip(pending, results, strict=True):
        if isinstance(result, BaseException):
            failed[item.job_id] = result
    return failed


async def reconcile(ctx: BatchContext, payload: dict[str, Any]) -> None:
    """No callback in time: ask the rail about the push and settle the state from its answer."""
    collection_id = _collection_id(payload)
    query_number = int(payload.get("query", 1))
    async with ctx.db.transaction() as session:
        collection = await repository.by_id(session, collection_id)
        if collection is None or collection.status in CLOSED_STATES:
            return
        mode, checkout = collection.mode, collection.provider_checkout_request_id
        network, reference, pushed = collection.network_code, collection.reference, collection.sent_at
    rail = _rail(ctx, collection_id, network, mode)
    if checkout is None and rail is not None and pushed is not None:
        # Its push was made and its reply never stored (a timeout, a worker that died): a rail that
        # knows the push by our reference (Airtel) can still be asked.
        checkout = rail.push_query_id(reference)
    outcome: service.Outcome | None = None
    if checkout is None or rail is None:
        # Not sent yet (a retry is pending), or its worker died before the rail's reply, or no rail
        # serves its network: nothing to ask a rail about. Wait for a callback a while longer, then
        # give up: NOT_SENT when no push was ever made (no sent_at, checked again under the lock
        # below) or no rail could have made one.
        if query_number >= MAX_QUERIES:
            outcome = service.Outcome(service.NOT_SENT, service.NOT_SENT_DESC)
    else:
        answer = await rail.query_push(checkout)
        if answer.status == Status.UNKNOWN:
            # No answer to the query (the rail down, or it no longer knows the push): ask again
            # later, and after the last query give up, rather than leave the collection open.
            log.warning("collection.query_failed", collection_id=str(collection_id), error=answer.error)
        if answer.status in (Status.SUCCEEDED, Status.FAILED) or query_number >= MAX_QUERIES:
            # With the rail's receipt when its answer has one (Airtel's enquiry; Daraja's has none).
            outcome = service.Outcome(answer.result_code, answer.result_desc, answer.receipt)
    async with ctx.db.transaction() as session:
        collection = await repository.by_id(session, collection_id)
        if collection is None:
            return
        if outcome is None:
            follow_up = {"collection_id": str(collection_id), "query": query_number + 1}
            enqueue(
                session, service.RECONCILE_JOB, follow_up,
                now=ctx.clock.now(), delay=service.reconcile_delay(ctx.settings),
            )  # fmt: skip
            return
        if outcome.result_code == service.NOT_SENT and rail is not None:
            locked = await repository.locked(session, collection_id)
            assert locked is not None
            if locked.sent_at is not None:  # its push was made: nobody answered it
                unanswered = rail.no_answer()
                outcome = service.Outcome(unanswered.result_code, unanswered.result_desc)
        await service.finish(session, collection, outcome, now=ctx.clock.now())


async def settle_by_query(ctx: BatchContext, collection_id: uuid.UUID) -> None:
    """Ask the rail about a collection left SENT and settle it from the answer, as its reconcile job
    does (reconciliation, before a day's report): a pending answer leaves it SENT, its next query
    queued."""
    await reconcile(ctx, {"collection_id": str(collection_id), "query": 1})
