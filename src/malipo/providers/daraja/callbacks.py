"""Daraja's callback bodies → neutral outcomes: the STK push result (CallBackURL), the B2C and
B2B results (ResultURL), queue timeouts (QueueTimeOutURL) and transaction-status answers.

Each parser takes the raw body and raises :class:`MalformedCallback` when it is not a bounded
Daraja body; it knows nothing of which collection or payout the body belongs to.
"""

from __future__ import annotations

import re
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from malipo.providers.base import (
    CallbackProblem,
    MalformedCallback,
    PayoutOutcome,
    PayoutStatusAnswer,
    PushOutcome,
    Status,
)
from malipo.providers.daraja import codes
from malipo.providers.daraja.schemas import DarajaResult, ResultBody, StkCallbackPayload

__all__ = [
    "ACCEPTED",
    "leading_party",
    "parse_payout_result",
    "parse_payout_status",
    "parse_payout_timeout",
    "parse_stk_callback",
]

# What Daraja expects back from a callback receiver.
ACCEPTED: dict[str, Any] = {"ResultCode": 0, "ResultDesc": "Accepted"}
# How many out-of-bounds fields a refusal names.
_PROBLEMS_SHOWN = 5
# The Occasion malipo sends with its status queries (``query-3``): which query an answer is for.
_QUERY_OCCASION = re.compile(r"query-[0-9]{1,3}")

_Body = TypeVar("_Body", bound=BaseModel)


def _validated(model: type[_Body], body: bytes, what: str) -> _Body:
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        problems = [
            CallbackProblem(".".join(str(part) for part in error["loc"]) or "body", error["msg"])
            for error in exc.errors(include_url=False, include_input=False)[:_PROBLEMS_SHOWN]
        ]
        raise MalformedCallback(what, exc.error_count(), problems) from None


def leading_party(value: object) -> str | None:
    """``"254708374149 - John Doe"`` → ``"254708374149"``: the number before Daraja's name."""
    if value is None:
        return None
    text = str(value)
    return text.split(" - ", 1)[0].strip() or None


def parse_stk_callback(body: bytes) -> PushOutcome:
    """An STK push's callback; on success, with what Daraja says was paid and by whom."""
    callback = _validated(StkCallbackPayload, body, "not a Daraja STK callback").callback
    paid = callback.ResultCode == codes.SUCCESS
    return PushOutcome(
        status=codes.status_of(callback.ResultCode),
        result_code=callback.ResultCode,
        result_desc=codes.explain(callback.ResultCode, callback.ResultDesc),
        receipt=callback.mpesa_receipt_number,
        provider_reference=callback.CheckoutRequestID,
        provider_request_id=callback.MerchantRequestID,
        amount=callback.amount_minor if paid else None,
        party=callback.phone_number if paid else None,
    )


def _result(body: bytes) -> DarajaResult:
    return _validated(ResultBody, body, "not a Daraja result").Result


def parse_payout_result(body: bytes, *, to_business: bool) -> PayoutOutcome:
    """A B2C (phone) or B2B (``to_business``: paybill and account) result."""
    result = _result(body)
    if result.ResultCode != codes.SUCCESS:
        return PayoutOutcome(
            Status.FAILED, result.ResultCode, codes.explain(result.ResultCode, result.ResultDesc),
            our_id=result.OriginatorConversationID, provider_reference=result.ConversationID,
        )  # fmt: skip
    receipt = result.TransactionID or result.parameter("TransactionReceipt")
    account = result.references().get("BillReferenceNumber")
    return PayoutOutcome(
        Status.SUCCEEDED, result.ResultCode, result.ResultDesc,
        receipt=None if receipt is None else str(receipt),
        our_id=result.OriginatorConversationID, provider_reference=result.ConversationID,
        amount=result.amount_minor("Amount" if to_business else "TransactionAmount"),
        party=leading_party(result.parameter("ReceiverPartyPublicName")),
        account=None if account is None else str(account),
    )  # fmt: skip


def parse_payout_timeout(body: bytes) -> PayoutOutcome:
    """A B2C or B2B request that timed out in Daraja's queue before it was processed."""
    result = _result(body)
    code, desc = codes.queue_timeout(result.ResultCode, result.ResultDesc)
    return PayoutOutcome(
        Status.FAILED, code, desc, our_id=result.OriginatorConversationID,
        provider_reference=result.ConversationID,
    )  # fmt: skip


def parse_payout_status(body: bytes) -> PayoutStatusAnswer:
    """A transaction-status answer. Its own ids are the query's: a completed transaction names
    the payout's in its parameters (``Originator Conversation ID``, ``Conversation ID``)."""
    result = _result(body)
    parameters = result.parameters()
    if result.ResultCode == codes.SUCCESS and parameters.get("TransactionStatus") == "Completed":
        originator = parameters.get("Originator Conversation ID")
        conversation = parameters.get("Conversation ID")
        receipt = parameters.get("ReceiptNo") or result.TransactionID
        account = result.references().get("BillReferenceNumber")
        outcome = PayoutOutcome(
            Status.SUCCEEDED, codes.SUCCESS, "Completed (transaction status)",
            receipt=None if receipt is None else str(receipt),
            our_id=None if originator is None else str(originator),
            provider_reference=None if conversation is None else str(conversation),
            amount=result.amount_minor("Amount"), party=leading_party(parameters.get("CreditPartyName")),
            account=None if account is None else str(account),
        )  # fmt: skip
        return PayoutStatusAnswer(completed=True, outcome=outcome)
    occasion = str(result.references().get("Occasion") or "")
    attempt = int(occasion.removeprefix("query-")) if _QUERY_OCCASION.fullmatch(occasion) else None
    code, desc = codes.no_completed_payout(result.ResultCode, result.ResultDesc)
    outcome = PayoutOutcome(Status.FAILED, code, desc)
    return PayoutStatusAnswer(completed=False, outcome=outcome, attempt=attempt)
