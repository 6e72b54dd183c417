"""Outbox jobs of payouts: send the payment to a phone, or to a bank's paybill, once through the
rail; the result comes in the rail's reply (Airtel's), at its result callback, or a status query
finds it (answered in its reply, or at the rail's status callback)."""

from __future__ import annotations

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
from malipo.worker.registry import BatchContext, JobContext, PermanentJobError, job_handler

log = get_logger("malipo.payouts")


@job_handler(service.SEND_JOB, max_attempts=6, base_delay=2.0, max_delay=60.0)
async def send_payout(ctx: JobContext, payload: dict[str, Any]) -> None:
    """QUEUED → SENT is committed before the call: a worker that dies mid-call never pays twice
    (the rail's result still finds the payout by the token in its callback address)."""
    try:
        payout_id = uuid.UUID(str(payload["payout_id"]))
    except (KeyError, ValueError) as exc:
        raise PermanentJobError(f"{service.SEND_JOB} payload has no valid payout_id: {exc}") from exc
    # Jobs queued before the token was derived carry it.
    token = str(payload.get("token") or service.callback_token(ctx.settings, payout_id))
    now = ctx.clock.now()
    async with ctx.db.transaction() as session:
        row = await repository.claim_queued(session, payout_id, now)
        if row is not None:
            # Asked about later whatever happens next: a worker that dies mid-send (the request
            # sent, or not) leaves a payout that this query settles, never one left SENT for good.
            service.schedule_reconcile(session, payout_id, 1, settings=ctx.settings, now=now)
    if row is None:
        return
    paybill: str | None = None
    if row.channel == "bank":
        # The paybill pinned when the payout was asked for (the setting's may have changed since).
        paybill = str(payload.get("paybill") or banks.bank_paybill(ctx.settings, row.network_code) or "")
        if not paybill:
            await _fail_unsent(ctx, payout_id, f"no M-Pesa paybill is configured for bank {row.network_code}")
            return
    try:
        rail = service.payout_rail(
            ctx.settings, channel=row.channel, network_code=row.network_code, mode=row.mode, http=ctx.http
        )
    except ProviderUnavailable as exc:  # queued before intake refused the network: no retry could send it
        log.warning("payout.no_rail", reference=row.reference, network_code=row.network_code, reason=str(exc))
        await _fail_unsent(ctx, payout_id, f"not sent: {exc}")
        return
    try:
        reply = await _send(rail, row, token, paybill)
    except RailError as exc:
        if not exc.not_taken:
            # Sending again could pay twice, failing could release money already paid out: it
            # stays SENT; the result (found by its token) or a transaction-status query decides.
            log.warning("payout.send_unconfirmed", reference=row.reference, error=str(exc))
            return  # its status query is queued already
        if exc.retryable and ctx.attempt < ctx.max_attempts:
            async with ctx.db.transaction() as session:  # the rail never had it: try again later
                await repository.requeue_sent(session, payout_id)
            raise
        async with ctx.db.transaction() as session:
            payout = await repository.by_id(session, payout_id)
            if payout is not None:
                outcome = service.Outcome(exc.result_code, exc.result_desc)  # the rail's, for a refusal
                await service.finish(session, payout, outcome, now=ctx.clock.now())
        return
    async with ctx.db.transaction() as session:
        await repository.store_conversation_id(session, payout_id, reply.provider_reference, ctx.clock.now())
    log.info("payout.sent", reference=row.reference, conversation=reply.provider_reference)
    if reply.outcome is not None:
        await _apply_at_once(ctx, payout_id, reply.outcome)


async def _apply_at_once(ctx: JobContext, payout_id: uuid.UUID, result: PayoutOutcome) -> None:
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


async def _fail_unsent(ctx: JobContext, payout_id: uuid.UUID, why: str) -> None:
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


@job_handler(service.RECONCILE_JOB, max_attempts=8, base_delay=10.0, max_delay=600.0)
async def reconcile_payout(ctx: JobContext, payload: dict[str, Any]) -> None:
    """No result yet: ask the rail for the payout's status (answered at its status callback)."""
    try:
        payout_id = uuid.UUID(str(payload["payout_id"]))
    except (KeyError, ValueError) as exc:
        raise PermanentJobError(f"{service.RECONCILE_JOB} payload has no valid payout_id: {exc}") from exc
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
    context = JobContext(payout_id, service.RECONCILE_JOB, 1, 1, ctx.db, ctx.clock, ctx.settings, ctx.http)
    await reconcile_payout(context, {"payout_id": str(payout_id), "query": 1})
