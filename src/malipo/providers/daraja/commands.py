"""Daraja's Reversal and Account Balance commands: their wire shapes and their results.

Both are asynchronous like B2C: a synchronous ack (``OriginatorConversationID``,
``ConversationID``, ``ResponseCode "0"``), then a ``{"Result": …}`` POSTed to ``ResultURL`` (or
``QueueTimeOutURL``). Their results are read more leniently than B2C's: a reversal's failure
carries a **string** ``ResultCode`` (``"R000002"``) and the balance sample sends ``ResultType``
and ``ResultCode`` as strings (reference §C, §D).
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import Field, ValidationError, field_validator

from malipo.providers.base import (
    BalanceLine,
    BalanceOutcome,
    CallbackProblem,
    MalformedCallback,
    ReversalOutcome,
    Status,
)
from malipo.providers.daraja.schemas import (
    Description,
    ReferenceItemList,
    RequestId,
    ResultParameterList,
    _Wire,
    shillings_to_minor,
)

__all__ = [
    "ACCOUNT_BALANCE_PATH",
    "REVERSAL_PATH",
    "AccountBalanceRequest",
    "CommandResult",
    "ReversalRequestWire",
    "parse_balance_result",
    "parse_balance_string",
    "parse_reversal_result",
]

REVERSAL_PATH = "/mpesa/reversal/v1/request"
ACCOUNT_BALANCE_PATH = "/mpesa/accountbalance/v1/query"
TRANSACTION_REVERSAL = "TransactionReversal"
ACCOUNT_BALANCE = "AccountBalance"
# The receiver of a reversal: an organisation shortcode, "11" in Daraja's official sample (§C).
REVERSAL_RECEIVER_TYPE = "11"
ORGANISATION_SHORTCODE = "4"
# How many out-of-bounds fields a refusal names.
_PROBLEMS_SHOWN = 5
_ACCOUNT_NAME = re.compile(r"[A-Za-z][A-Za-z .'-]{0,59}")
_CURRENCY = re.compile(r"[A-Z]{3}")
# At most this many accounts in one balance answer (Daraja lists five for a paybill).
_ACCOUNTS_MAX = 20


class ReversalRequestWire(_Wire):
    """``POST /mpesa/reversal/v1/request``. ``RecieverIdentifierType`` is Daraja's own spelling."""

    Initiator: str
    SecurityCredential: str = Field(repr=False)
    CommandID: str = TRANSACTION_REVERSAL
    TransactionID: str
    Amount: int
    ReceiverParty: str
    RecieverIdentifierType: str = REVERSAL_RECEIVER_TYPE
    ResultURL: str
    QueueTimeOutURL: str
    Remarks: str = Field(min_length=2, max_length=100)
    Occasion: str | None = None


class AccountBalanceRequest(_Wire):
    """``POST /mpesa/accountbalance/v1/query``."""

    Initiator: str
    SecurityCredential: str = Field(repr=False)
    CommandID: str = ACCOUNT_BALANCE
    PartyA: str
    IdentifierType: str = ORGANISATION_SHORTCODE
    Remarks: str
    QueueTimeOutURL: str
    ResultURL: str


class CommandReply(_Wire):
    """The synchronous ack of a reversal or balance query."""

    OriginatorConversationID: Annotated[str, Field(max_length=100)] = ""
    ConversationID: RequestId
    ResponseCode: str
    ResponseDescription: str = ""


class CommandResult(_Wire):
    """``Result`` of a reversal or balance query: codes may be numbers or strings."""

    ResultType: Annotated[str, Field(max_length=2)] = "0"
    ResultCode: Annotated[str, Field(min_length=1, max_length=20)]
    ResultDesc: Description
    OriginatorConversationID: RequestId
    ConversationID: RequestId
    TransactionID: Annotated[str, Field(max_length=30)] | None = None
    ResultParameters: ResultParameterList | None = None
    ReferenceData: ReferenceItemList | None = None

    @field_validator("ResultCode", "ResultType", mode="before")
    @classmethod
    def _code(cls, value: Any) -> Any:
        if isinstance(value, bool | float):
            raise ValueError("a result code is an integer or a string")
        return value

    def parameters(self) -> dict[str, Any]:
        if self.ResultParameters is None:
            return {}
        return {item.Key: item.Value for item in self.ResultParameters.ResultParameter}


class CommandResultBody(_Wire):
    Result: CommandResult


def _validated(body: bytes, what: str) -> CommandResult:
    try:
        return CommandResultBody.model_validate_json(body).Result
    except ValidationError as exc:
        problems = [
            CallbackProblem(".".join(str(part) for part in error["loc"]) or "body", error["msg"])
            for error in exc.errors(include_url=False, include_input=False)[:_PROBLEMS_SHOWN]
        ]
        raise MalformedCallback(what, exc.error_count(), problems) from None


def _malformed(what: str, field: str, message: str) -> MalformedCallback:
    return MalformedCallback(what, 1, [CallbackProblem(field, message)])


def parse_reversal_result(body: bytes) -> ReversalOutcome:
    """A reversal's Result (or its queue timeout): success with what was reversed, or the failure
    (``R000001`` already reversed, ``R000002`` unknown receipt, …) with nothing reversed."""
    what = "not a Daraja reversal result"
    result = _validated(body, what)
    parameters = result.parameters()
    succeeded = result.ResultCode == "0" and result.ResultType == "0"
    if not succeeded:
        return ReversalOutcome(
            Status.FAILED, result.ResultCode if result.ResultCode != "0" else "1", result.ResultDesc,
            our_id=result.OriginatorConversationID, provider_reference=result.ConversationID,
        )  # fmt: skip
    amount = parameters.get("Amount")
    original = parameters.get("OriginalTransactionID")
    try:
        minor = None if amount in (None, "") else shillings_to_minor(amount)
    except ValueError:
        raise _malformed(what, "Result.ResultParameters.Amount", "not an amount") from None
    if original is not None and len(str(original)) > 30:
        raise _malformed(what, "Result.ResultParameters.OriginalTransactionID", "longer than 30 characters")
    return ReversalOutcome(
        Status.SUCCEEDED, "0", result.ResultDesc, receipt=result.TransactionID,
        original_receipt=None if original is None else str(original), amount=minor,
        our_id=result.OriginatorConversationID, provider_reference=result.ConversationID,
    )  # fmt: skip


def parse_balance_string(value: str) -> tuple[BalanceLine, ...]:
    """``Working Account|KES|700000.00|700000.00|0.00|0.00&Utility Account|KES|…`` → one line per
    account, every amount in minor units, by position (their meaning is not all published)."""
    lines = []
    for account in value.split("&"):
        if not account.strip():
            continue
        fields = account.split("|")
        if len(fields) < 3:
            raise ValueError(f"an account needs a name, a currency and amounts: {account[:60]!r}")
        name, currency, *amounts = (part.strip() for part in fields)
        if not _ACCOUNT_NAME.fullmatch(name) or not _CURRENCY.fullmatch(currency):
            raise ValueError(f"not an account name and currency: {account[:60]!r}")
        lines.append(BalanceLine(name, currency, tuple(_signed_minor(amount) for amount in amounts)))
    if not lines or len(lines) > _ACCOUNTS_MAX:
        raise ValueError("no accounts, or too many")
    return tuple(lines)


def _signed_minor(text: str) -> int:
    """``-1540.00`` → ``-154000`` (the Charges Paid account is negative)."""
    negative = text.startswith("-")
    minor = shillings_to_minor(text.removeprefix("-"))
    return -minor if negative else minor


def parse_balance_result(body: bytes) -> BalanceOutcome:
    """An Account Balance Result: every account and its amounts, or the refusal's code."""
    what = "not a Daraja account balance result"
    result = _validated(body, what)
    parameters = result.parameters()
    if result.ResultCode != "0":
        return BalanceOutcome(
            result_code=result.ResultCode, result_desc=result.ResultDesc,
            our_id=result.OriginatorConversationID, provider_reference=result.ConversationID,
        )  # fmt: skip
    try:
        accounts = parse_balance_string(str(parameters.get("AccountBalance") or ""))
    except ValueError as exc:
        raise _malformed(what, "Result.ResultParameters.AccountBalance", str(exc)) from None
    completed = parameters.get("BOCompletedTime")
    return BalanceOutcome(
        accounts=accounts, result_code="0", result_desc=result.ResultDesc,
        our_id=result.OriginatorConversationID, provider_reference=result.ConversationID,
        answered_at=None if completed is None else str(completed)[:20],
    )  # fmt: skip
