"""Outbox jobs of payouts: send the payment to a phone, or to a bank's paybill, once through the
rail; the result comes in the rail's reply (Airtel's), at its result callback, or a status query
finds it (answered in its reply, or at the rail's status callback)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from malipo.collections.service import CallbackMismatch
from malipo.core.logging import get_logger
from malipo.payouts import banks, repository, service
from malipo.payouts.models import PAYOUT_CLOSED_STATES, PayoutStatus
from malipo.providers.base import (
    BusinessPayment,
    MobileMoney,
    PayoutAccepted,
    PayoutOutcome,
    PayoutStatusQuery,
    PhonePayment,
    ProviderUnavailable,
    RailError,
)
from malipo.worker.registry import (
    BatchContext,
    BatchItem,
    PermanentJobError,
    batch_job_handler,
)

log = get_logger("malipo.payouts")


def _payout_id(kind: str, payload: dict[str, Any]) -> uuid.UUID:
    try:
        return uuid.UUID(str(payload["payout_id"]))
    except (KeyError, ValueError) as exc:
        raise PermanentJobError(f"{kind} payload has no valid payout_id: {exc}") from exc


@batch_job_handler(service.SEND_JOB, max_attempts=6, base_delay=2.0, max_delay=60.0)
async def send_payouts(ctx: BatchContext, items: list[BatchItem]) -> dict[uuid.UUID, BaseException]:
    """Send each payout once: QUEUED → SENT is committed, for the whole batch in one transaction,
    before the calls, so a worker that dies mid-call never pays twice (the rail's result still
    finds each payout by the token in its callback address). With the claim, each payout's status
    query is queued: a worker that dies mid-send (the request sent, or not) leaves a payout that
    its query settles, never one left SENT for good. The payments go out together, as many at a
    time as the HTTP client has connections; the rail's ids are stored in one transaction after."""
    failed: dict[uuid.UUID, BaseException] = {}
    wanted: dict[uuid.UUID, BatchItem] = {}
    for item in items:
        try:
            wanted[_payout_id(service.SEND_JOB, item.payload)] = item
        except PermanentJobError as exc:
            failed[item.job_id] = exc
    if not wanted:
        return failed
    now = ctx.clock.now()
    async with ctx.db.transaction() as session:
        rows = await repository.claim_queued(session, list(wanted), now)
        await service.schedule_reconciles(session, [row.id for row in rows], settings=ctx.settings, now=now)
    # All at once: the worker's HTTP client lets as many in as it has connections, the rest wait.
    replies = await asyncio.gather(
        *(_send_one(ctx, wanted[row.id], row) for row in rows), return_exceptions=True
    )
    accepted: list[tuple[Any, PayoutAccepted]] = []
    for row, reply in zip(rows, replies, strict=True):
        if isinstance(reply, BaseException):
            failed[wanted[row.id].job_id] = reply
        elif reply is not None:
            accepted.append((row, reply))
    if accepted:
        async with ctx.db.transaction() as session:
            await repository.store_conversation_ids(
                session, [(row.id, reply.provider_reference) for row, reply in accepted], ctx.clock.now()
            )
        log.info("payout.sent", count=len(accepted))
    for row, reply in accepted:
        if reply.outcome is not None:
            await _apply_at_once(ctx, row.id, reply.outcome)
    return failed


async def _send_one(ctx: BatchContext, item: BatchItem, row: Any) -> PayoutAccepted | None:
    """The rail's acceptance of one claimed payout, or None when it was not sent or was refused
    (handled here); raises to retry a payment the rail never took."""
    # Jobs queued before the token was derived carry it.
    token = str(item.payload.get("token") or service.callback_token(ctx.settings, row.id))
    paybill: str | None = None
    if row.channel == "bank":
        # The paybill pinned when the payout was asked for (the setting's may have changed since).
        paybill = str(item.payload.get("paybill") or banks.bank_paybill(ctx.settings, row.network_code) or "")
        if not paybill:
            await _fail_unsent(ctx, row.id, f"no M-Pesa paybill is configured for bank {row.network_code}")
            return None
    try:
        rail = service.payout_rail(
            ctx.settings, channel=row.channel, network_code=row.network_code, mode=row.mode, http=ctx.http
        )
    except ProviderUnavailable as exc:  # queued before intake refused the network: no retry could send it
        log.warning("payout.no_rail", reference=row.reference, network_code=row.network_code, reason=str(exc))
        await _fail_unsent(ctx, row.id, f"not sent: {exc}")
        return None
    try:
        return await _send(rail, row, token, paybill)
    except RailError as exc:
        if not exc.not_taken:
            # Sending again could pay twice, failing could release money already paid out: it
            # stays SENT; the result (found by its token) or a transaction-status query decides.
            log.warning("payout.send_unconfirmed", reference=row.reference, error=str(exc))
            return None  # its status query is queued already
        if exc.retryable and item.attempt < item.max_attempts:
            async with ctx.db.transaction() as session:  # the rail never had it: try again later
                await repository.requeue_sent(session, row.id)
            raise
        async with ctx.db.transaction() as session:
            payout = await repository.by_id(session, row.id)
            if payout is not None:
                outcome = service.Outcome(exc.result_code, exc.result_desc)  # the rail's, for a refusal
                await service.finish(session, payout, outcome, now=ctx.clock.now())
        return None


async def _apply_at_once(ctx: BatchContext, payout_id: uuid.UUID, result: PayoutOutcome) -> None:
    """The result the rail's reply already gave (Airtel's TS): applied as its callback would be.
    One that names another request changes nothing; the reconcile job, queued, still asks."""
    async with ctx.db.transaction() as session:
        payout = await repository.by_id(session, payout_id)
        if payout is None:
            return
        try:
            await service.apply_result(session, payout, result, settings=ctx.settings, now=ctx.clock.now())
        except CallbackMismatch:
            return  # logged; nothing moved


async def _fail_unsent(ctx: BatchContext, payout_id: uuid.UUID, why: str) -> None:
    """Nothing was sent: fail the payout (its holds released, the merchant's callback queued)."""
    async with ctx.db.transaction() as session:
        payout = await repository.by_id(session, payout_id)
        if payout is not None:
            outcome = service.Outcome(service.NOT_SENT_FAILURE, why)
            await service.finish(session, payout, outcome, now=ctx.clock.now())


async def _send(rail: MobileMoney, row: Any, token: str, paybill: str | None) -> PayoutAccepted:
    """To the phone, or to the bank's paybill with the account number as its reference."""
    if paybill is not None:
        return await rail.pay_business(
            BusinessPayment(
                reference=row.reference, amount=row.amount, paybill=paybill, account=row.account_number,
                our_id=row.originator_conversation_id, callback_token=token,
            )
        )  # fmt: skip
    return await rail.pay_phone(
        PhonePayment(
            reference=row.reference, amount=row.amount, phone=row.phone,
            our_id=row.originator_conversation_id, callback_token=token,
        )
    )  # fmt: skip


@batch_job_handler(service.RECONCILE_JOB, max_attempts=8, base_delay=10.0, max_delay=600.0)
async def reconcile_many(ctx: BatchContext, items: list[BatchItem]) -> dict[uuid.UUID, BaseException]:
    """The status queries that came due together: those whose payout has its result already
    (nearly all) end with one query of the database; each of the others is asked about."""
    failed: dict[uuid.UUID, BaseException] = {}
    wanted: dict[uuid.UUID, uuid.UUID] = {}
    for item in items:
        try:
            wanted[item.job_id] = _payout_id(service.RECONCILE_JOB, item.payload)
        except PermanentJobError as exc:
            failed[item.job_id] = exc
    if not wanted:
        return failed
    async with ctx.db.transaction() as session:
        awaited = await repository.awaiting_result(session, set(wanted.values()))
    pending = [item for item in items if wanted.get(item.job_id) in awaited]
    results = await asyncio.gather(
        *(reconcile_payout(ctx, item.payload) for item in pending), return_exceptions=True
    )
    for item, result in zip(pending, results, strict=True):
        if isinstance(result, BaseException):
            failed[item.job_id] = result
    return failed


async def reconcile_payout(ctx: BatchContext, payload: dict[str, Any]) -> None:
    """No result yet: ask the rail for the payout's status (answered at its status callback)."""
    payout_id = _payout_id(service.RECONCILE_JOB, payload)
    query = int(payload.get("query", 1))
    token = str(payload.get("token") or service.callback_token(ctx.settings, payout_id))
    async with ctx.db.transaction() as session:
        payout = await repository.by_id(session, payout_id)
        # QUEUED: put back after the rail refused to take it; its next send queues its own query.
        if payout is None or payout.status in PAYOUT_CLOSED_STATES or payout.status == PayoutStatus.QUEUED:
            return
        try:
            rail = service.payout_rail(
                ctx.settings, channel=payout.channel, network_code=payout.network_code, mode=payout.mode,
                http=ctx.http,
            )  # fmt: skip
        except ProviderUnavailable as exc:
            # Sent before its network was refused (it may have been paid): failing it could release
            # money paid out, so its result, found by its token, still decides; asking again never can.
            log.warning("payout.no_rail", reference=payout.reference, network_code=payout.network_code,
                        reason=str(exc))  # fmt: skip
            return
        query_id = service.status_query_id(payout, rail)
    answer = await rail.query_payout(
        PayoutStatusQuery(query_id=query_id, attempt=query, callback_token=token)
    )
    if answer is None:  # it arrives at the rail's status callback
        return
    async with ctx.db.transaction() as session:  # the rail answered at once (Airtel's enquiry)
        payout = await repository.by_id(session, payout_id)
        if payout is None or payout.status in PAYOUT_CLOSED_STATES:
            return
        await service.apply_status_answer(session, payout, answer, settings=ctx.settings, now=ctx.clock.now())


async def settle_by_query(ctx: BatchContext, payout_id: uuid.UUID) -> None:
    """Ask the rail about a payout whose result never came, as its reconcile job does
    (reconciliation, before a day's report): Airtel's enquiry answers at once; Daraja's status
    query at its callback."""
    await reconcile_payout(ctx, {"payout_id": str(payout_id), "query": 1})
