"""Outbox jobs of transfers: send the code by SMS, send the transfer to the bank rail, ask the rail
when its status report is late, and cancel a transfer nobody authorised.

A transfer goes to the rail with our EndToEndId, which the rail keeps unique: sending it again
(a worker that died mid-call, a status query that finds the rail never got it) is answered with
the status of the first, never a second payment.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from malipo.core.logging import get_logger
from malipo.core.phones import InvalidNumber, to_e164
from malipo.identity import clients
from malipo.providers.base import CreditTransfer, RailError, Status, TransferOutcome
from malipo.providers.registry import bank_transfer_for, sms_client
from malipo.sms import service as sms_service
from malipo.transfers import bulk, otp, repository, service
from malipo.transfers.models import TransferStatus
from malipo.worker.registry import JobContext, PermanentJobError, job_handler

log = get_logger("malipo.transfers")
# Imported for its payout listener: a bulk mobile entry follows its payout in the worker too.
__all__ = ["bulk"]


def _transfer_id(kind: str, payload: dict[str, Any]) -> uuid.UUID:
    try:
        return uuid.UUID(str(payload["transfer_id"]))
    except (KeyError, ValueError) as exc:
        raise PermanentJobError(f"{kind} payload has no valid transfer_id: {exc}") from exc


def _query_delay(ctx: JobContext, query: int) -> timedelta:
    base = float(ctx.settings.bank_query_after_seconds)
    return timedelta(seconds=min(base * (2 ** max(0, query - 1)), 3600.0))


@job_handler(service.OTP_SMS_JOB, max_attempts=4, base_delay=2.0, max_delay=30.0)
async def send_code_by_sms(ctx: JobContext, payload: dict[str, Any]) -> None:
    transfer_id = _transfer_id(service.OTP_SMS_JOB, payload)
    async with ctx.db.transaction() as session:
        transfer = await repository.by_id(session, transfer_id)
        if transfer is None or transfer.status != TransferStatus.PENDING:
            return
        client = await clients.client_by_id(session, transfer.client_id)
    try:
        code = otp.sealed_code(transfer_id, str(payload["code"]))
        number = to_e164(str(payload["to"]), client.country if client else "KE", mobile_only=True)
    except InvalidNumber as exc:
        log.warning("transfer.otp_sms_not_sent", reference=transfer.reference, reason=str(exc))
        return
    except (KeyError, ValueError) as exc:
        raise PermanentJobError(
            f"{service.OTP_SMS_JOB} payload cannot be read: {type(exc).__name__}"
        ) from None
    sms = sms_client(ctx.settings, transfer.mode, ctx.http)
    results = await sms.send([number], otp.otp_text(transfer, code))
    async with ctx.db.transaction() as session:  # so that its delivery report is recognised
        await sms_service.record_system_sms(
            session, [r.message_id for r in results], purpose="transfer_otp", now=ctx.clock.now()
        )
    log.info("transfer.otp_sms_sent", reference=transfer.reference)


@job_handler(service.SEND_JOB, max_attempts=6, base_delay=2.0, max_delay=60.0)
async def send_transfer(ctx: JobContext, payload: dict[str, Any]) -> None:
    """PROCESSING, not sent yet → sent: the mark and a status query for later are committed before
    the call, so a worker that dies mid-call leaves a transfer the query finds (and sends again)."""
    transfer_id = _transfer_id(service.SEND_JOB, payload)
    now = ctx.clock.now()
    async with ctx.db.transaction() as session:
        transfer = await repository.by_id(session, transfer_id)
        if transfer is None or transfer.status != TransferStatus.PROCESSING or transfer.sent_at is not None:
            return
        if not await repository.claim_unsent(session, transfer_id, now):
            return
        client = await clients.client_by_id(session, transfer.client_id)
        query = transfer.queries + 1
        service.schedule_query(session, transfer_id, query, delay=_query_delay(ctx, query), now=now)
    request = CreditTransfer(
        end_to_end_id=transfer.end_to_end_id, amount=transfer.amount, currency=transfer.currency,
        debtor_account=ctx.settings.bank_settlement_account,
        debtor_name=(client.name if client else "")[:140],
        creditor_account=transfer.account_number, creditor_bank_code=transfer.bank_code,
        remittance=transfer.narration[:140], callback_token=service.callback_token(ctx.settings, transfer_id),
    )  # fmt: skip
    rail = bank_transfer_for(ctx.settings, transfer.mode, ctx.http)
    try:
        accepted = await rail.send_transfer(request)
    except RailError as exc:
        if not exc.not_taken:  # it may have been taken: the status query decides
            log.warning("transfer.send_unconfirmed", reference=transfer.reference, error=str(exc))
            return
        if exc.retryable and ctx.attempt < ctx.max_attempts:
            async with ctx.db.transaction() as session:  # the rail never had it: send again later
                await repository.unclaim(session, transfer_id)
            raise
        refused = TransferOutcome(
            Status.FAILED, transfer.end_to_end_id, reason_code="NARR", reason=exc.result_desc
        )
        async with ctx.db.transaction() as session:
            current = await repository.by_id(session, transfer_id)
            if current is not None:
                await service.apply_outcome(session, current, refused, now=ctx.clock.now())
        return
    async with ctx.db.transaction() as session:
        current = await repository.by_id(session, transfer_id)
        if current is None:
            return
        current.provider_reference = current.provider_reference or accepted.provider_reference
        await service.apply_outcome(session, current, accepted.outcome, now=ctx.clock.now())
    log.info("transfer.sent", reference=transfer.reference, status=accepted.outcome.status)


@job_handler(service.QUERY_JOB, max_attempts=4, base_delay=10.0, max_delay=300.0)
async def query_transfer(ctx: JobContext, payload: dict[str, Any]) -> None:
    """No status report yet: ask the rail. Final → applied; the rail does not know it → sent again
    (safe: same EndToEndId); still pending or unreachable → asked again later, up to MAX_QUERIES,
    after which the transfer stays PROCESSING, its funds held, for an operator."""
    transfer_id = _transfer_id(service.QUERY_JOB, payload)
    query = int(payload.get("query", 1))
    async with ctx.db.transaction() as session:
        transfer = await repository.by_id(session, transfer_id)
    if transfer is None or transfer.status != TransferStatus.PROCESSING or transfer.queries >= query:
        return
    rail = bank_transfer_for(ctx.settings, transfer.mode, ctx.http)
    outcome = await rail.query_transfer(transfer.end_to_end_id)
    now = ctx.clock.now()
    async with ctx.db.transaction() as session:
        current = await repository.by_id(session, transfer_id, lock=True)
        if current is None or current.status != TransferStatus.PROCESSING or current.queries >= query:
            return
        current.queries = query
        if outcome.status in (Status.SUCCEEDED, Status.FAILED):
            await service.apply_outcome(session, current, outcome, now=now)
            return
        if query >= service.MAX_QUERIES:
            log.error(
                "transfer.unresolved", reference=current.reference, queries=query, status=outcome.status
            )
            return
        if outcome.not_found and current.sent_at is not None:
            # The rail has no such transfer: it never arrived. Send it again (same EndToEndId).
            await repository.unclaim(session, transfer_id)
            service.enqueue_send(session, transfer_id, now=now)
            log.info("transfer.resend", reference=current.reference)
            return
        service.schedule_query(session, transfer_id, query + 1, delay=_query_delay(ctx, query + 1), now=now)


@job_handler(service.EXPIRE_JOB, max_attempts=5, base_delay=5.0, max_delay=120.0)
async def expire_transfer(ctx: JobContext, payload: dict[str, Any]) -> None:
    transfer_id = _transfer_id(service.EXPIRE_JOB, payload)
    async with ctx.db.transaction() as session:
        await service.expire(session, transfer_id, now=ctx.clock.now())
