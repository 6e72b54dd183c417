"""Daraja's B2C and B2B results (ResultURL) and queue timeouts (QueueTimeOutURL) for payouts."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import ValidationError

from malipo.api.deps import ClockDep, Session
from malipo.core.errors import ValidationFailed
from malipo.core.logging import get_logger
from malipo.payouts import service
from malipo.providers.daraja.schemas import ResultBody

log = get_logger("malipo.callbacks")

router = APIRouter(prefix="/callbacks", tags=["provider callbacks"], include_in_schema=False)

ACCEPTED = {"ResultCode": 0, "ResultDesc": "Accepted"}


async def _result(request: Request, token: str, session: Session) -> tuple[Any, Any]:
    try:
        payout = await service.payout_for_token(session, token)
    except service.UnknownPayoutToken:
        log.warning("callback.unknown_token", provider="daraja", kind="payout")
        raise
    try:
        result = ResultBody.model_validate_json(await request.body()).Result
    except ValidationError as exc:
        log.warning("callback.malformed", provider="daraja", reference=payout.reference)
        raise ValidationFailed(f"not a Daraja result: {exc.error_count()} problem(s)") from None
    return payout, result


@router.post("/daraja/{token}/result", name="Callbacks.DarajaResult")
async def b2c_result(token: str, request: Request, session: Session, clock: ClockDep) -> dict[str, Any]:
    payout, result = await _result(request, token, session)
    receipt = (
        result.TransactionID or result.parameter("TransactionReceipt") if result.ResultCode == 0 else None
    )
    outcome = service.Outcome(result.ResultCode, result.ResultDesc, receipt, result.ConversationID)
    await service.finish(session, payout, outcome, now=clock.now())
    return ACCEPTED


@router.post("/daraja/{token}/timeout", name="Callbacks.DarajaTimeout")
async def b2c_timeout(token: str, request: Request, session: Session, clock: ClockDep) -> dict[str, Any]:
    """The request timed out in Daraja's queue before it was processed: nothing was paid."""
    payout, result = await _result(request, token, session)
    outcome = service.Outcome(result.ResultCode or 1, f"Timed out in M-Pesa's queue: {result.ResultDesc}")
    await service.finish(session, payout, outcome, now=clock.now())
    return ACCEPTED


@router.post("/daraja/{token}/status", name="Callbacks.DarajaStatus")
async def status_result(token: str, request: Request, session: Session, clock: ClockDep) -> dict[str, Any]:
    """The answer to a transaction-status query about a payout whose result never came."""
    payout, result = await _result(request, token, session)
    parameters = result.parameters()
    now = clock.now()
    if result.ResultCode == 0 and parameters.get("TransactionStatus") == "Completed":
        receipt = parameters.get("ReceiptNo") or result.TransactionID
        await service.finish(
            session, payout, service.Outcome(0, "Completed (transaction status)", receipt), now=now
        )
        return ACCEPTED
    occasion = str(result.references().get("Occasion") or "")
    query = (
        int(occasion.removeprefix("query-")) if occasion.startswith("query-") else service.MAX_STATUS_QUERIES
    )
    if query < service.MAX_STATUS_QUERIES:
        service.schedule_reconcile(
            session, payout.id, query + 1, settings=request.app.state.settings, now=now
        )
    else:
        outcome = service.Outcome(
            result.ResultCode or 1, f"No completed payout at M-Pesa: {result.ResultDesc}"
        )
        await service.finish(session, payout, outcome, now=now)
    return ACCEPTED
