"""Transaction status: finding a completed payment and answering at its ResultURL."""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from malipo.core.logging import get_logger
from malipo.providers.daraja.schemas import (
    PAYBILL,
    daraja_timestamp,
)
from malipo.providers.daraja.simulator.base import SimulatorBase
from malipo.providers.daraja.simulator.checks import (
    _IDENTIFIER_TYPE,
    _PARTY,
    _conversation_id,
    _invalid,
    _json_object,
    _matching,
    _merchant_request_id,
    _text,
    _url,
)
from malipo.providers.daraja.simulator.outcomes import (
    _B2B_REASON_TYPES,
    _B2C_ACCEPTED,
    _BUSINESS_NAME,
    _CUSTOMER_NAME,
    _INITIATOR_REJECTED,
    _PAYBILL_NAME,
    _REASON_TYPES,
    _STATUS_FOUND,
    _STATUS_NOT_FOUND,
)
from malipo.providers.daraja.simulator.records import (
    B2BPayment,
    B2CPayment,
    StatusQuery,
    StkPush,
)

log = get_logger("malipo.providers.daraja.simulator")


class StatusHandlers(SimulatorBase):
    # ------------------------------------------------------------------ transaction status

    async def _transaction_status(self, request: Request) -> JSONResponse:
        self._authorise(request)
        body = await _json_object(request)
        initiator = _text(body, "Initiator")
        security_credential = _text(body, "SecurityCredential")
        if _text(body, "CommandID") != "TransactionStatusQuery":
            _invalid("CommandID")
        transaction_id = _text(body, "TransactionID", max_length=100, required=False)
        original_conversation_id = _text(body, "OriginalConversationID", max_length=100, required=False)
        if not transaction_id and not original_conversation_id:
            _invalid("TransactionID")
        _matching(body, "PartyA", _PARTY)
        _matching(body, "IdentifierType", _IDENTIFIER_TYPE)
        result_url = _url(body, "ResultURL")
        _url(body, "QueueTimeOutURL")
        _text(body, "Remarks", max_length=100)
        occasion = _text(body, "Occasion", max_length=100, required=False)

        now = self._now()
        query = StatusQuery(
            originator_conversation_id=_merchant_request_id(),
            conversation_id=_conversation_id(now),
            initiator=initiator,
            security_credential=security_credential,
            transaction_id=transaction_id,
            original_conversation_id=original_conversation_id,
            result_url=result_url,
            occasion=occasion,
        )
        self.status_queries.append(query)
        self._spawn(self._settle_status(query), "transaction_status")
        return JSONResponse(
            {
                "OriginatorConversationID": query.originator_conversation_id,
                "ConversationID": query.conversation_id,
                "ResponseCode": "0",
                "ResponseDescription": _B2C_ACCEPTED,
            }
        )

    async def _settle_status(self, query: StatusQuery) -> None:
        await asyncio.sleep(self.callback_delay)
        await self._deliver(query.result_url, self._status_result(query))

    def _find_completed(self, query: StatusQuery) -> StkPush | B2CPayment | B2BPayment | None:
        wanted = {query.transaction_id, query.original_conversation_id} - {""}
        for push in self.stk_pushes.values():
            if push.result is not None and push.result.succeeded:
                ids = {push.receipt, push.checkout_request_id, push.merchant_request_id}
                if wanted & ids:
                    return push
        payments: list[B2CPayment | B2BPayment] = [*self.b2c_payments.values(), *self.b2b_payments.values()]
        for payment in payments:
            if payment.result is not None and payment.result.succeeded:
                ids = {payment.transaction_id, payment.conversation_id, payment.originator_conversation_id}
                if wanted & ids:
                    return payment
        return None

    def _status_result(self, query: StatusQuery) -> dict[str, Any]:
        found: StkPush | B2CPayment | B2BPayment | None = None
        if not self._initiator_ok(query.initiator, query.security_credential):
            outcome = _INITIATOR_REJECTED
        else:
            found = self._find_completed(query)
            outcome = _STATUS_NOT_FOUND if found is None else _STATUS_FOUND
        result: dict[str, Any] = {
            "ResultType": 0,
            "ResultCode": outcome.result_code,
            "ResultDesc": outcome.result_desc,
            "OriginatorConversationID": query.originator_conversation_id,
            "ConversationID": query.conversation_id,
            "TransactionID": query.transaction_id,
        }
        if found is not None:
            parameters = status_parameters(found)
            result["TransactionID"] = parameters["ReceiptNo"]
            result["ResultParameters"] = {
                "ResultParameter": [{"Key": key, "Value": value} for key, value in parameters.items()]
            }
        result["ReferenceData"] = {"ReferenceItem": {"Key": "Occasion", "Value": query.occasion}}
        return {"Result": result}


def status_parameters(found: StkPush | B2CPayment | B2BPayment) -> dict[str, Any]:
    """Transaction status ``ResultParameters`` (key names with spaces are Daraja's)."""
    assert found.completed_at is not None
    if isinstance(found, StkPush):
        assert found.receipt is not None
        initiated = found.created_at
        receipt, amount = found.receipt, found.amount
        conversation_id, originator_id = found.checkout_request_id, found.merchant_request_id
        reason = "Pay Bill Online" if found.transaction_type == PAYBILL else "Buy Goods Online"
        debit_party = f"{found.phone} - {_CUSTOMER_NAME}"
        credit_party = f"{found.party_b} - {_BUSINESS_NAME}"
        debit_account = "Customer"
    elif isinstance(found, B2BPayment):
        assert found.transaction_id is not None
        initiated = found.created_at
        receipt, amount = found.transaction_id, found.amount
        conversation_id, originator_id = found.conversation_id, found.originator_conversation_id
        reason = _B2B_REASON_TYPES.get(found.command_id, "Business Pay Bill")
        debit_party = f"{found.party_a} - {_BUSINESS_NAME}"
        credit_party = f"{found.party_b} - {_PAYBILL_NAME}"
        debit_account = "Working Account"
    else:
        assert found.transaction_id is not None
        initiated = found.created_at
        receipt, amount = found.transaction_id, found.amount
        conversation_id, originator_id = found.conversation_id, found.originator_conversation_id
        reason = _REASON_TYPES.get(found.command_id, "Business Payment to Customer via API")
        debit_party = f"{found.party_a} - {_BUSINESS_NAME}"
        credit_party = f"{found.phone} - {_CUSTOMER_NAME}"
        debit_account = "Utility Account"
    return {
        "DebitPartyName": debit_party,
        "CreditPartyName": credit_party,
        "InitiatedTime": int(daraja_timestamp(initiated)),
        "Originator Conversation ID": originator_id,
        "DebitAccountType": debit_account,
        "DebitPartyCharges": "",
        "TransactionReason": "",
        "ReasonType": reason,
        "TransactionStatus": "Completed",
        "FinalisedTime": int(daraja_timestamp(found.completed_at)),
        "Amount": amount,
        "Conversation ID": conversation_id,
        "ReceiptNo": receipt,
    }
