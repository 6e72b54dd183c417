"""Daraja's B2C and B2B results (ResultURL) and queue timeouts (QueueTimeOutURL) for payouts.

Each is refused, and changes nothing, when its address is unknown (404), its body is not JSON
(415) or not a bounded Daraja result (422), or it names another request than the payout's (409).
A success for another amount or receiver than was asked is taken (200) but held for review.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, Request
from pydantic import ValidationError

from malipo.collections.callbacks import UnsupportedMediaType, is_json, malformed
from malipo.collections.service import CallbackMismatch
from malipo.core.logging import get_logger
from malipo.http.deps import ClockDep, Session
from malipo.http.tags import PROVIDER_CALLBACKS
from malipo.payouts import banks, service
from malipo.payouts.models import Payout
from malipo.providers.daraja.schemas import DarajaResult, ResultBody
from malipo.reviews.records import Received, leading_party

log = get_logger("malipo.callbacks")

router = APIRouter(prefix="/callbacks", tags=[PROVIDER_CALLBACKS], include_in_schema=False)

ACCEPTED = {"ResultCode": 0, "ResultDesc": "Accepted"}


async def _result(request: Request, token: str, session: Session) -> tuple[Payout, DarajaResult]:
    try:
        payout = await service.payout_for_token(session, token)
    except service.UnknownPayoutToken:
        log.warning("callback.unknown_token", provider="daraja", kind="payout")
        raise
    if not is_json(request):
        log.warning("callback.malformed", provider="daraja", reference=payout.reference, reason="media type")
        raise UnsupportedMediaType("a Daraja result is sent as application/json")
    try:
        result = ResultBody.model_validate_json(await request.body()).Result
    except ValidationError as exc:
        log.warning("callback.malformed", provider="daraja", reference=payout.reference)
        raise malformed("not a Daraja result", exc) from None
    return payout, result


def _refuse(payout: Payout, wrong: str, result_code: int) -> CallbackMismatch:
    log.warning(
        "callback.mismatch", provider="daraja", kind="payout", reference=payout.reference, fields=wrong,
        result_code=result_code,
    )  # fmt: skip
    return CallbackMismatch(f"the result's {wrong} is not this payout's")


def _check_ids(payout: Payout, originator: str | None, conversation: str | None, code: int) -> None:
    wrong = service.result_mismatch(payout, originator, conversation)
    if wrong is not None:
        raise _refuse(payout, wrong, code)


def _received(request: Request, payout: Payout, amount: int | None, party: Any, account: Any) -> Received:
    """What M-Pesa says it paid: to the phone (B2C), or to the bank's paybill and account (B2B)."""
    if payout.channel != "bank":
        return Received(amount, leading_party(party))
    paybill = banks.bank_paybill(request.app.state.settings, payout.network_code)
    extra = (
        ("paybill", paybill, leading_party(party)),
        ("account", payout.account_number, None if account is None else str(account)),
    )
    return Received(amount, None, extra)


@router.post("/daraja/{token}/result", name="Callbacks.DarajaResult")
async def b2c_result(token: str, request: Request, session: Session, clock: ClockDep) -> dict[str, Any]:
    payout, result = await _result(request, token, session)
    _check_ids(payout, result.OriginatorConversationID, result.ConversationID, result.ResultCode)
    receipt = (
        result.TransactionID or result.parameter("TransactionReceipt") if result.ResultCode == 0 else None
    )
    received = None
    if result.ResultCode == 0:
        key = "Amount" if payout.channel == "bank" else "TransactionAmount"
        received = _received(
            request, payout, result.amount_minor(key), result.parameter("ReceiverPartyPublicName"),
            result.references().get("BillReferenceNumber"),
        )  # fmt: skip
    outcome = service.Outcome(
        result.ResultCode, result.ResultDesc, receipt, result.ConversationID, received=received
    )
    await service.finish(session, payout, outcome, now=clock.now())
    return ACCEPTED


@router.post("/daraja/{token}/timeout", name="Callbacks.DarajaTimeout")
async def b2c_timeout(token: str, request: Request, session: Session, clock: ClockDep) -> dict[str, Any]:
    """The request timed out in Daraja's queue before it was processed: nothing was paid."""
    payout, result = await _result(request, token, session)
    _check_ids(payout, result.OriginatorConversationID, result.ConversationID, result.ResultCode)
    outcome = service.Outcome(result.ResultCode or 1, f"Timed out in M-Pesa's queue: {result.ResultDesc}")
    await service.finish(session, payout, outcome, now=clock.now())
    return ACCEPTED


@router.post("/daraja/{token}/status", name="Callbacks.DarajaStatus")
async def status_result(token: str, request: Request, session: Session, clock: ClockDep) -> dict[str, Any]:
    """The answer to a transaction-status query about a payout whose result never came.

    Its own ids are the query's; a completed transaction it reports must be this payout's
    (``Originator Conversation ID`` / ``Conversation ID``) and is compared with what was asked.
    """
    payout, result = await _result(request, token, session)
    parameters = result.parameters()
    now = clock.now()
    if result.ResultCode == 0 and parameters.get("TransactionStatus") == "Completed":
        originator = parameters.get("Originator Conversation ID")
        conversation = parameters.get("Conversation ID")
        _check_ids(
            payout, None if originator is None else str(originator),
            None if conversation is None else str(conversation), result.ResultCode,
        )  # fmt: skip
        receipt = parameters.get("ReceiptNo") or result.TransactionID
        received = _received(
            request, payout, result.amount_minor("Amount"), parameters.get("CreditPartyName"),
            result.references().get("BillReferenceNumber"),
        )  # fmt: skip
        outcome = service.Outcome(
            0, "Completed (transaction status)", None if receipt is None else str(receipt), received=received
        )
        await service.finish(session, payout, outcome, now=now)
        return ACCEPTED
    occasion = str(result.references().get("Occasion") or "")
    query = service.MAX_STATUS_QUERIES
    if re.fullmatch(r"query-[0-9]{1,3}", occasion):
        query = min(int(occasion.removeprefix("query-")), service.MAX_STATUS_QUERIES)
    if query < service.MAX_STATUS_QUERIES:
        service.schedule_reconcile(
            session, payout.id, query + 1, settings=request.app.state.settings, now=now
        )
    else:
        outcome = service.Outcome(
            result.ResultCode or 1, f"No completed payout at M-Pesa: {result.ResultDesc}"[:300]
        )
        await service.finish(session, payout, outcome, now=now)
    return ACCEPTED
