"""Airtel's callback body → neutral outcomes.

Airtel posts one shape to the app's callback URL (set once in Airtel's portal, not per request):
``{"transaction": {"id", "message", "status_code", "airtel_money_id"}}``, plus a top-level
``hash`` when callback authentication is on. ``transaction.id`` is our own id: the collection's
reference for a push, the payout's id for a disbursement (Airtel documents no disbursement
callback; one that comes is read the same way). Airtel's samples carry no amount and no payer:
when a callback does carry ``transaction.amount`` it is read, to be compared with what was asked.

The parsers raise :class:`MalformedCallback` when the body is not such a callback; they know
nothing of which collection or payout it belongs to.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from pydantic import ValidationError

from malipo.core.errors import InvalidAmount
from malipo.core.money import Money
from malipo.providers.airtel import codes
from malipo.providers.airtel.schemas import CallbackBody, CallbackTransaction
from malipo.providers.base import (
    CallbackProblem,
    MalformedCallback,
    PayoutOutcome,
    PushOutcome,
    Status,
)

__all__ = ["ACCEPTED", "parse_callback", "parse_payout_callback", "parse_push_callback"]

# Airtel expects HTTP 200; the body is not specified.
ACCEPTED: dict[str, Any] = {"status": "accepted"}
_PROBLEMS_SHOWN = 5


def parse_callback(body: bytes) -> CallbackTransaction:
    """The callback's ``transaction``; MalformedCallback naming at most five fields otherwise."""
    try:
        return CallbackBody.model_validate_json(body).transaction
    except ValidationError as exc:
        problems = [
            CallbackProblem(".".join(str(part) for part in error["loc"]) or "body", error["msg"])
            for error in exc.errors(include_url=False, include_input=False)[:_PROBLEMS_SHOWN]
        ]
        raise MalformedCallback("not an Airtel Money callback", exc.error_count(), problems) from None


def _minor(amount: Decimal | None, currency: str) -> int | None:
    """A major-unit amount in minor units; None when absent or finer than the currency allows
    (then it cannot equal what was asked, and the comparison says so)."""
    if amount is None:
        return None
    try:
        return Money.parse(amount, currency, allow_zero=True).amount
    except InvalidAmount:
        return -1


def parse_push_callback(body: bytes, *, currency: str) -> PushOutcome:
    """A USSD push's callback: our reference and Airtel's receipt; pending for an intermediate one."""
    transaction = parse_callback(body)
    status = codes.status_of(transaction.status_code)
    if status == Status.SUCCEEDED:
        code, desc = codes.PAID, codes.collection_success(transaction.message)
    elif status == Status.FAILED:
        code, desc = codes.collection_failure(transaction.code, transaction.message)
    else:
        code, desc = codes.NO_ANSWER, codes.PAYER_DID_NOT_ANSWER
    paid = status == Status.SUCCEEDED
    return PushOutcome(
        status=status, result_code=code, result_desc=desc,
        receipt=transaction.airtel_money_id if paid else None,
        provider_reference=transaction.id, our_reference=transaction.id,
        amount=_minor(transaction.amount, currency) if paid else None,
        states_payment=transaction.amount is not None,
    )  # fmt: skip


def parse_payout_callback(body: bytes, *, currency: str) -> PayoutOutcome:
    """A disbursement's callback: our payout id, Airtel's receipt and, when given, the amount."""
    transaction = parse_callback(body)
    status = codes.status_of(transaction.status_code)
    if status == Status.SUCCEEDED:
        code, desc = codes.PAID, codes.payout_success(transaction.message)
    else:
        code, desc = codes.payout_failure(transaction.code, transaction.message)
    paid = status == Status.SUCCEEDED
    return PayoutOutcome(
        status=status, result_code=code, result_desc=desc,
        receipt=transaction.airtel_money_id if paid else None,
        our_id=transaction.id, provider_reference=transaction.id,
        amount=_minor(transaction.amount, currency) if paid else None,
        states_payment=transaction.amount is not None,
    )  # fmt: skip
