"""Outbox jobs of payouts: send the B2C (phone) or B2B (bank paybill) request once; the result
arrives at the ResultURL, or a transaction-status query finds it."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import update

from malipo.core.logging import get_logger
from malipo.payouts import banks, service
from malipo.payouts.models import PAYOUT_CLOSED_STATES, Payout, PayoutStatus
from malipo.providers.daraja.client import DarajaClient, DarajaError, surely_not_taken
from malipo.providers.daraja.schemas import B2CReply
from malipo.providers.registry import daraja_client
from malipo.worker.registry import JobContext, PermanentJobError, job_handler

log = get_logger("malipo.payouts")


@job_handler(service.SEND_JOB, max_attempts=6, base_delay=2.0, max_delay=60.0)
async def send_payout(ctx: JobContext, payload: dict[str, Any]) -> None:
    """QUEUED → SENT is committed before the call: a worker that dies mid-call never pays twice
    (Daraja's result still finds the payout by the token in its ResultURL)."""
    try:
        payout_id = uuid.UUID(str(payload["payout_id"]))
    except (KeyError, ValueError) as exc:
        raise PermanentJobError(f"{service.SEND_JOB} payload has no valid payout_id: {exc}") from exc
    # Jobs queued before the token was derived carry it.
    token = str(payload.get("token") or service.callback_token(ctx.settings, payout_id))
    now = ctx.clock.now()
    async with ctx.db.transaction() as session:
        claimed = await session.execute(
            update(Payout)
            .where(Payout.id == payout_id, Payout.status == PayoutStatus.QUEUED)
            .values(status=PayoutStatus.SENT, sent_at=now, updated_at=now)
            .returning(
                Payout.channel,
                Payout.network_code,
                Payout.phone,
                Payout.account_number,
                Payout.amount,
                Payout.reference,
                Payout.mode,
                Payout.originator_conversation_id,
            )
            .execution_options(synchronize_session=False)
        )
        row = claimed.first()
    if row is None:
        return
    paybill: str | None = None
    if row.channel == "bank":
        # The paybill pinned when the payout was asked for (the setting's may have changed since).
        paybill = str(payload.get("paybill") or banks.bank_paybill(ctx.settings, row.network_code) or "")
        if not paybill:  # nothing was sent: fail it and release the holds
            async with ctx.db.transaction() as session:
                payout = await session.get(Payout, payout_id)
                if payout is not None:
                    outcome = service.Outcome(
                        1, f"no M-Pesa paybill is configured for bank {row.network_code}"
                    )
                    await service.finish(session, payout, outcome, now=ctx.clock.now())
            return
    try:
        reply = await _send(daraja_client(ctx.settings, row.mode, ctx.http), ctx, row, token, paybill)
    except DarajaError as exc:
        if not surely_not_taken(exc):
            # Sending again could pay twice, failing could release money already paid out: it
            # stays SENT; the result (found by its token) or a transaction-status query decides.
            log.warning("payout.send_unconfirmed", reference=row.reference, error=str(exc))
            async with ctx.db.transaction() as session:
                service.schedule_reconcile(session, payout_id, 1, settings=ctx.settings, now=ctx.clock.now())
            return
        if exc.retryable and ctx.attempt < ctx.max_attempts:
            async with ctx.db.transaction() as session:  # Daraja never had it: try again later
                await session.execute(
                    update(Payout)
                    .where(Payout.id == payout_id, Payout.status == PayoutStatus.SENT)
                    .values(status=PayoutStatus.QUEUED, sent_at=None)
                    .execution_options(synchronize_session=False)
                )
            raise
        async with ctx.db.transaction() as session:
            payout = await session.get(Payout, payout_id)
            if payout is not None:
                desc = exc.error_message or str(exc)
                outcome = service.Outcome(1, f"M-Pesa refused the payout: {desc}")
                await service.finish(session, payout, outcome, now=ctx.clock.now())
        return
    async with ctx.db.transaction() as session:
        await session.execute(
            update(Payout)
            .where(Payout.id == payout_id)
            .values(conversation_id=reply.ConversationID, updated_at=ctx.clock.now())
            .execution_options(synchronize_session=False)
        )
        service.schedule_reconcile(session, payout_id, 1, settings=ctx.settings, now=ctx.clock.now())
    log.info("payout.sent", reference=row.reference, conversation=reply.ConversationID)


async def _send(client: DarajaClient, ctx: JobContext, row: Any, token: str, paybill: str | None) -> B2CReply:
    """B2C to the phone, or B2B to the bank's paybill with the account number as its reference."""
    result_url = service.result_url(ctx.settings, token)
    queue_timeout_url = service.timeout_url(ctx.settings, token)
    if paybill is not None:
        return await client.b2b(
            amount=row.amount // 100, paybill=paybill, account_reference=row.account_number,
            remarks=f"Payout {row.reference}", occasion=row.reference, result_url=result_url,
            queue_timeout_url=queue_timeout_url, originator_conversation_id=row.originator_conversation_id,
        )  # fmt: skip
    return await client.b2c(
        amount=row.amount // 100, phone=row.phone, remarks=f"Payout {row.reference}", occasion=row.reference,
        result_url=result_url, queue_timeout_url=queue_timeout_url,
        originator_conversation_id=row.originator_conversation_id,
    )  # fmt: skip


@job_handler(service.RECONCILE_JOB, max_attempts=8, base_delay=10.0, max_delay=600.0)
async def reconcile_payout(ctx: JobContext, payload: dict[str, Any]) -> None:
    """No result yet: ask Daraja for the transaction's status (answered at the status URL)."""
    try:
        payout_id = uuid.UUID(str(payload["payout_id"]))
    except (KeyError, ValueError) as exc:
        raise PermanentJobError(f"{service.RECONCILE_JOB} payload has no valid payout_id: {exc}") from exc
    query = int(payload.get("query", 1))
    token = str(payload.get("token") or service.callback_token(ctx.settings, payout_id))
    async with ctx.db.transaction() as session:
        payout = await session.get(Payout, payout_id)
        if payout is None or payout.status in PAYOUT_CLOSED_STATES:
            return
        mode, originator = payout.mode, service.status_query_id(payout)
    await daraja_client(ctx.settings, mode, ctx.http).transaction_status(
        original_conversation_id=originator,
        result_url=service.status_url(ctx.settings, token),
        queue_timeout_url=service.status_url(ctx.settings, token),
        remarks=f"Status of payout {originator}",
        occasion=f"query-{query}",
    )
