"""Reversal (``POST /mpesa/reversal/v1/request``) and Account Balance
(``POST /mpesa/accountbalance/v1/query``): the sync ack, then the Result at ``ResultURL``.

A reversal finds the paid STK push by its receipt (``TransactionID``) and reverses up to what is
left of it: several partial reversals may add up to the original, never more.

==========================================  =================================================
what is asked                                what happens
==========================================  =================================================
a receipt with that much left                ResultCode 0, ResultParameters as Daraja's sample
a receipt already reversed in full           ``"R000001"`` "The transaction has already been
                                             reversed." (string code, placeholder TransactionID)
an unknown receipt, or another shortcode's   ``"R000002"`` "The OriginalTransactionID is invalid."
more than is left of the receipt             ``"R000003"`` "The amount is more than the
                                             original transaction's" (the simulator's own code:
                                             Daraja's answer is not published)
the receipt of a push paid by 254700000009   times out in the queue: ``QueueTimeOutURL`` gets a
                                             Result (ResultType 1, ResultCode 1); nothing
                                             is reversed
an unknown initiator (with ``initiators``)   ResultCode 2001
==========================================  =================================================

The balance of a shortcode is built from the simulated accounts: Working (``b2b_funds``),
Utility (``b2c_funds`` plus what STK pushes collected, minus reversals), Charges Paid (a
negative figure) and Organization Settlement, as Daraja's ``&``/``|`` string with string codes.
"""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from malipo.core.logging import get_logger
from malipo.providers.daraja.schemas import daraja_timestamp
from malipo.providers.daraja.simulator.base import SimulatorBase
from malipo.providers.daraja.simulator.checks import (
    _SHORTCODE,
    _amount,
    _conversation_id,
    _invalid,
    _json_object,
    _matching,
    _merchant_request_id,
    _receipt,
    _text,
    _url,
)
from malipo.providers.daraja.simulator.outcomes import _B2C_ACCEPTED, _CUSTOMER_NAME, _PAYBILL_NAME

log = get_logger("malipo.providers.daraja.simulator")

#: A push paid by this phone is paid as any other; a reversal of its receipt times out in the queue.
REVERSAL_TIMEOUT_PHONE = "254700000009"
ALREADY_REVERSED = ("R000001", "The transaction has already been reversed.")
UNKNOWN_RECEIPT = ("R000002", "The OriginalTransactionID is invalid.")
ABOVE_ORIGINAL = ("R000003", "The amount is more than the original transaction's")
_PLACEHOLDER_RECEIPT = "SKE0000000"
_REVERSAL_RECEIVER_TYPES = frozenset({"11", "4"})
_CHARGES = 1540  # shillings, shown negative on the Charges Paid account


@dataclass(slots=True)
class Reversal:
    originator_conversation_id: str
    conversation_id: str
    initiator: str
    security_credential: str = field(repr=False)
    receipt: str
    amount: int
    receiver_party: str
    result_url: str
    queue_timeout_url: str
    remarks: str
    occasion: str
    created_at: datetime
    result_code: str | None = None
    result_desc: str | None = None
    transaction_id: str | None = None


@dataclass(slots=True)
class BalanceQuery:
    originator_conversation_id: str
    conversation_id: str
    party_a: str
    result_url: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Received:
    """A payment a shortcode received (an STK push, a C2B payment, a planted statement row)."""

    amount: int  # whole shillings
    phone: str


class CommandHandlers(SimulatorBase):
    def _command_state(self) -> None:
        if not hasattr(self, "reversals"):
            self.reversals: dict[str, Reversal] = {}
            self.reversed: dict[str, int] = {}  # receipt -> shillings reversed
            self.balance_queries: list[BalanceQuery] = []

    def _ack(self, originator: str, conversation: str) -> JSONResponse:
        return JSONResponse(
            {
                "OriginatorConversationID": originator,
                "ConversationID": conversation,
                "ResponseCode": "0",
                "ResponseDescription": _B2C_ACCEPTED,
            }
        )

    # ------------------------------------------------------------------ reversal

    async def _reversal(self, request: Request) -> JSONResponse:
        self._authorise(request)
        self._command_state()
        body = await _json_object(request)
        initiator = _text(body, "Initiator")
        credential = _text(body, "SecurityCredential")
        if _text(body, "CommandID") != "TransactionReversal":
            _invalid("CommandID")
        receipt = _text(body, "TransactionID", max_length=30)
        amount = _amount(body)
        receiver = _matching(body, "ReceiverParty", _SHORTCODE)
        if str(body.get("RecieverIdentifierType", "")) not in _REVERSAL_RECEIVER_TYPES:  # sic: Daraja's
            _invalid("RecieverIdentifierType")
        result_url = _url(body, "ResultURL")
        timeout_url = _url(body, "QueueTimeOutURL")
        remarks = _text(body, "Remarks", min_length=2, max_length=100)
        occasion = _text(body, "Occasion", max_length=100, required=False)
        now = self._now()
        reversal = Reversal(
            _merchant_request_id(), _conversation_id(now), initiator, credential, receipt, amount, receiver,
            result_url, timeout_url, remarks, occasion, now,
        )  # fmt: skip
        self.reversals[reversal.originator_conversation_id] = reversal
        self._spawn(self._settle_reversal(reversal), "reversal")
        log.info("daraja_sim.reversal.accepted", receipt=receipt, amount=amount)
        return self._ack(reversal.originator_conversation_id, reversal.conversation_id)

    def _received(self, receipt: str, shortcode: str) -> Received | None:
        """The payment ``shortcode`` received as ``receipt``: a paid STK push, or any row of the
        shortcode's statement (C2B payments, and rows planted there)."""
        for push in list(self.stk_pushes.values()):
            if push.receipt == receipt and push.result is not None and push.result.succeeded:
                ours = shortcode in (push.shortcode, push.party_b)
                return Received(push.amount, push.phone) if ours else None
        statement = getattr(self, "statement", None)
        row = statement.rows.get(receipt) if statement is not None else None
        if row is None or row.shortcode != shortcode:
            return None
        return Received(int(row.amount), row.msisdn)

    async def _settle_reversal(self, reversal: Reversal) -> None:
        await asyncio.sleep(self.callback_delay)
        push = self._received(reversal.receipt, reversal.receiver_party)
        if push is not None and push.phone == REVERSAL_TIMEOUT_PHONE:
            reversal.result_code, reversal.result_desc = "1", "The service request has timed out."
            await self._deliver(
                reversal.queue_timeout_url, self._reversal_result(reversal, None, result_type=1)
            )
            return
        left = 0 if push is None else push.amount - self.reversed.get(reversal.receipt, 0)
        code, desc = "0", "The service request is processed successfully."
        if not self._command_initiator_ok(reversal.initiator, reversal.security_credential):
            code, desc = "2001", "The initiator information is invalid."
        elif push is None:
            code, desc = UNKNOWN_RECEIPT
        elif left <= 0:
            code, desc = ALREADY_REVERSED
        elif reversal.amount > left:
            code, desc = ABOVE_ORIGINAL
        reversal.result_code, reversal.result_desc = code, desc
        if code == "0":
            assert push is not None
            self.reversed[reversal.receipt] = self.reversed.get(reversal.receipt, 0) + reversal.amount
            reversal.transaction_id = _receipt()
        await self._deliver(reversal.result_url, self._reversal_result(reversal, push))

    def _command_initiator_ok(self, name: str, credential: str) -> bool:
        if self.initiators is None:
            return True
        expected = self.initiators.get(name)
        return expected is not None and secrets.compare_digest(expected.encode(), credential.encode())

    def _reversal_result(
        self, reversal: Reversal, push: Received | None, result_type: int = 0
    ) -> dict[str, Any]:
        result: dict[str, Any] = {
            "ResultType": result_type,
            "ResultCode": 0 if reversal.result_code == "0" else reversal.result_code,
            "ResultDesc": reversal.result_desc,
            "OriginatorConversationID": reversal.originator_conversation_id,
            "ConversationID": reversal.conversation_id,
            "TransactionID": reversal.transaction_id or _PLACEHOLDER_RECEIPT,
        }
        if reversal.result_code == "0" and push is not None:
            utility = self._utility_funds()
            debit = f"Utility Account|KES|{utility:.2f}|{utility:.2f}|0.00|0.00"
            result["ResultParameters"] = {
                "ResultParameter": [
                    {"Key": "DebitAccountBalance", "Value": debit},
                    {"Key": "Amount", "Value": float(reversal.amount)},
                    {"Key": "TransCompletedTime", "Value": int(daraja_timestamp(self._now()))},
                    {"Key": "OriginalTransactionID", "Value": reversal.receipt},
                    {"Key": "Charge", "Value": 0.0},
                    {"Key": "CreditPartyPublicName", "Value": f"{push.phone} - {_CUSTOMER_NAME}"},
                    {"Key": "DebitPartyPublicName", "Value": f"{reversal.receiver_party} - {_PAYBILL_NAME}"},
                ]
            }  # fmt: skip
        result["ReferenceData"] = {
            "ReferenceItem": {"Key": "QueueTimeoutURL", "Value": reversal.queue_timeout_url}
        }
        return {"Result": result}

    # ------------------------------------------------------------------ account balance

    def _utility_funds(self) -> int:
        """The utility account: the B2C float plus what STK pushes collected, less reversals."""
        self._command_state()
        collected = sum(
            p.amount for p in list(self.stk_pushes.values()) if p.result is not None and p.result.succeeded
        )
        return self.b2c_funds + collected - sum(self.reversed.values())

    def balance_string(self) -> str:
        """Daraja's ``AccountBalance`` value for the simulated shortcode."""
        accounts = [
            ("Working Account", self.b2b_funds),
            ("Float Account", 0),
            ("Utility Account", self._utility_funds()),
            ("Charges Paid Account", -_CHARGES),
            ("Organization Settlement Account", 0),
        ]
        return "&".join(f"{name}|KES|{funds:.2f}|{funds:.2f}|0.00|0.00" for name, funds in accounts)

    async def _account_balance(self, request: Request) -> JSONResponse:
        self._authorise(request)
        self._command_state()
        body = await _json_object(request)
        initiator = _text(body, "Initiator")
        credential = _text(body, "SecurityCredential")
        if _text(body, "CommandID") != "AccountBalance":
            _invalid("CommandID")
        party_a = _matching(body, "PartyA", _SHORTCODE)
        if str(body.get("IdentifierType", "")) != "4":
            _invalid("IdentifierType")
        _text(body, "Remarks", max_length=100)
        _url(body, "QueueTimeOutURL")
        result_url = _url(body, "ResultURL")
        now = self._now()
        query = BalanceQuery(_merchant_request_id(), _conversation_id(now), party_a, result_url, now)
        self.balance_queries.append(query)
        ok = self._command_initiator_ok(initiator, credential)
        self._spawn(self._answer_balance(query, ok), "balance")
        return self._ack(query.originator_conversation_id, query.conversation_id)

    async def _answer_balance(self, query: BalanceQuery, initiator_ok: bool) -> None:
        await asyncio.sleep(self.callback_delay)
        result: dict[str, Any] = {
            "ResultType": "0",
            "ResultCode": "0" if initiator_ok else "2001",
            "ResultDesc": "The service request is processed successfully"
            if initiator_ok
            else "The initiator information is invalid.",
            "OriginatorConversationID": query.originator_conversation_id,
            "ConversationID": query.conversation_id,
            "TransactionID": "OA90000000",
        }
        if initiator_ok:
            result["ResultParameters"] = {
                "ResultParameter": [
                    {"Key": "AccountBalance", "Value": self.balance_string()},
                    {"Key": "BOCompletedTime", "Value": daraja_timestamp(self._now())},
                ]
            }
        result["ReferenceData"] = {"ReferenceItem": {"Key": "QueueTimeoutURL", "Value": query.result_url}}
        await self._deliver(query.result_url, {"Result": result})
