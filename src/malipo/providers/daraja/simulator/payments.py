"""B2C (to a phone) and B2B (Business Pay Bill): the requests, their settlement and results."""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from malipo.core.logging import get_logger
from malipo.providers.daraja.schemas import (
    B2B_ACCOUNT_REFERENCE_MAX,
    B2B_COMMAND_IDS,
    B2C_COMMAND_IDS,
    BUSINESS_PAY_BILL,
    PROCESSING_ERROR,
    daraja_timestamp,
)
from malipo.providers.daraja.simulator.base import SimulatorBase
from malipo.providers.daraja.simulator.checks import (
    _MSISDN,
    _SHORTCODE,
    _SHORTCODE_IDENTIFIER,
    _amount,
    _conversation_id,
    _eat,
    _invalid,
    _json_object,
    _matching,
    _merchant_request_id,
    _receipt,
    _Rejected,
    _text,
    _url,
)
from malipo.providers.daraja.simulator.outcomes import (
    _B2C_ACCEPTED,
    _B2C_INSUFFICIENT,
    _CUSTOMER_NAME,
    _INITIATOR_REJECTED,
    _PAYBILL_NAME,
    B2B_OUTCOMES,
    B2B_SUCCESS,
    B2C_OUTCOMES,
    B2C_SUCCESS,
    Delivery,
    Outcome,
)
from malipo.providers.daraja.simulator.records import (
    B2BPayment,
    B2CPayment,
)

log = get_logger("malipo.providers.daraja.simulator")


class PaymentHandlers(SimulatorBase):
    # ------------------------------------------------------------------ B2C

    async def _b2c(self, request: Request) -> JSONResponse:
        self._authorise(request)
        body = await _json_object(request)
        originator_conversation_id = _text(body, "OriginatorConversationID", max_length=100)
        initiator = _text(body, "InitiatorName")
        security_credential = _text(body, "SecurityCredential")
        command_id = _text(body, "CommandID")
        if command_id not in B2C_COMMAND_IDS:
            _invalid("CommandID")
        amount = _amount(body)
        party_a = _matching(body, "PartyA", _SHORTCODE)
        phone = _matching(body, "PartyB", _MSISDN)
        remarks = _text(body, "Remarks", min_length=2, max_length=100)
        queue_timeout_url = _url(body, "QueueTimeOutURL")
        result_url = _url(body, "ResultURL")
        occasion = _text(body, "Occasion", max_length=100, required=False)
        if originator_conversation_id in self.b2c_payments:
            raise _Rejected(500, PROCESSING_ERROR, "Duplicate OriginatorConversationID")

        now = self._now()
        payment = B2CPayment(
            originator_conversation_id=originator_conversation_id,
            conversation_id=_conversation_id(now),
            initiator=initiator,
            security_credential=security_credential,
            command_id=command_id,
            amount=amount,
            party_a=party_a,
            phone=phone,
            remarks=remarks,
            occasion=occasion,
            result_url=result_url,
            queue_timeout_url=queue_timeout_url,
            created_at=now,
        )
        self.b2c_payments[originator_conversation_id] = payment
        self._spawn(self._settle_b2c(payment), "b2c")
        log.info(
            "daraja_sim.b2c.accepted",
            originator_conversation_id=originator_conversation_id,
            conversation_id=payment.conversation_id,
            amount=amount,
        )
        return JSONResponse(
            {
                "ConversationID": payment.conversation_id,
                "OriginatorConversationID": originator_conversation_id,
                "ResponseCode": "0",
                "ResponseDescription": _B2C_ACCEPTED,
            }
        )

    def _initiator_ok(self, name: str, credential: str) -> bool:
        if self.initiators is None:
            return True
        expected = self.initiators.get(name)
        return expected is not None and secrets.compare_digest(expected.encode(), credential.encode())

    async def _settle_b2c(self, payment: B2CPayment) -> None:
        await asyncio.sleep(self.callback_delay)
        scripted = B2C_OUTCOMES.get(payment.phone, B2C_SUCCESS)
        if await self._settle(payment, scripted, self.b2c_funds):
            self.b2c_funds -= payment.amount
        if payment.result is not None and payment.result.delivery is Delivery.RESULT:
            await self._deliver(payment.result_url, self._b2c_result(payment))

    async def _settle(self, payment: B2CPayment | B2BPayment, scripted: Outcome, funds: int) -> bool:
        """Decide and record the outcome (a queue timeout is posted here); True if the money moved."""
        outcome = scripted
        if not self._initiator_ok(payment.initiator, payment.security_credential):
            outcome = _INITIATOR_REJECTED
        elif outcome.succeeded and payment.amount > funds:
            outcome = _B2C_INSUFFICIENT
        payment.result = outcome
        payment.completed_at = self._now()
        if outcome.delivery is Delivery.QUEUE_TIMEOUT:
            await self._deliver(payment.queue_timeout_url, self._queue_timeout_result(payment))
            return False
        payment.transaction_id = _receipt()
        return outcome.succeeded

    @staticmethod
    def _result_head(payment: B2CPayment | B2BPayment) -> dict[str, Any]:
        assert payment.result is not None
        assert payment.completed_at is not None
        return {
            "ResultType": 0,
            "ResultCode": payment.result.result_code,
            "ResultDesc": payment.result.result_desc,
            "OriginatorConversationID": payment.originator_conversation_id,
            "ConversationID": payment.conversation_id,
            "TransactionID": payment.transaction_id,
        }

    def _b2c_result(self, payment: B2CPayment) -> dict[str, Any]:
        result = self._result_head(payment)
        assert payment.result is not None
        assert payment.completed_at is not None
        if payment.result.succeeded:
            result["ResultParameters"] = {
                "ResultParameter": [
                    {"Key": "TransactionAmount", "Value": payment.amount},
                    {"Key": "TransactionReceipt", "Value": payment.transaction_id},
                    {"Key": "B2CRecipientIsRegisteredCustomer", "Value": "Y"},
                    {"Key": "B2CChargesPaidAccountAvailableFunds", "Value": 0},
                    {"Key": "ReceiverPartyPublicName", "Value": f"{payment.phone} - {_CUSTOMER_NAME}"},
                    {
                        "Key": "TransactionCompletedDateTime",
                        "Value": f"{_eat(payment.completed_at):%d.%m.%Y %H:%M:%S}",
                    },
                    {"Key": "B2CUtilityAccountAvailableFunds", "Value": self.b2c_funds},
                    {"Key": "B2CWorkingAccountAvailableFunds", "Value": 0},
                ]
            }
        result["ReferenceData"] = {
            "ReferenceItem": {"Key": "QueueTimeoutURL", "Value": payment.queue_timeout_url}
        }
        return {"Result": result}

    def _queue_timeout_result(self, payment: B2CPayment | B2BPayment) -> dict[str, Any]:
        assert payment.result is not None
        return {
            "Result": {
                "ResultType": 1,
                "ResultCode": payment.result.result_code,
                "ResultDesc": payment.result.result_desc,
                "OriginatorConversationID": payment.originator_conversation_id,
                "ConversationID": payment.conversation_id,
            }
        }

    # ------------------------------------------------------------------ B2B

    async def _b2b(self, request: Request) -> JSONResponse:
        self._authorise(request)
        body = await _json_object(request)
        initiator = _text(body, "Initiator")
        security_credential = _text(body, "SecurityCredential")
        command_id = _text(body, "CommandID")
        if command_id not in B2B_COMMAND_IDS:
            _invalid("CommandID")
        _matching(body, "SenderIdentifierType", _SHORTCODE_IDENTIFIER)
        _matching(body, "RecieverIdentifierType", _SHORTCODE_IDENTIFIER)  # sic: Daraja's spelling
        amount = _amount(body)
        party_a = _matching(body, "PartyA", _SHORTCODE)
        party_b = _matching(body, "PartyB", _SHORTCODE)
        account_reference = _text(
            body,
            "AccountReference",
            max_length=B2B_ACCOUNT_REFERENCE_MAX,
            required=command_id == BUSINESS_PAY_BILL,
        )
        requester = _text(body, "Requester", required=False)
        if requester and not _MSISDN.fullmatch(requester):
            _invalid("Requester")
        remarks = _text(body, "Remarks", max_length=100)
        queue_timeout_url = _url(body, "QueueTimeOutURL")
        result_url = _url(body, "ResultURL")
        occasion = _text(body, "Occasion", max_length=100, required=False)
        originator_conversation_id = _text(body, "OriginatorConversationID", max_length=100, required=False)
        if originator_conversation_id in self.b2b_payments:
            raise _Rejected(500, PROCESSING_ERROR, "Duplicate OriginatorConversationID")
        while not originator_conversation_id or originator_conversation_id in self.b2b_payments:
            originator_conversation_id = _merchant_request_id()  # Daraja's own, as its B2B does

        now = self._now()
        payment = B2BPayment(
            originator_conversation_id=originator_conversation_id,
            conversation_id=_conversation_id(now),
            initiator=initiator,
            security_credential=security_credential,
            command_id=command_id,
            amount=amount,
            party_a=party_a,
            party_b=party_b,
            account_reference=account_reference,
            requester=requester,
            remarks=remarks,
            occasion=occasion,
            result_url=result_url,
            queue_timeout_url=queue_timeout_url,
            created_at=now,
        )
        self.b2b_payments[originator_conversation_id] = payment
        self._spawn(self._settle_b2b(payment), "b2b")
        log.info(
            "daraja_sim.b2b.accepted",
            originator_conversation_id=originator_conversation_id,
            conversation_id=payment.conversation_id,
            amount=amount,
        )
        return JSONResponse(
            {
                "OriginatorConversationID": originator_conversation_id,
                "ConversationID": payment.conversation_id,
                "ResponseCode": "0",
                "ResponseDescription": _B2C_ACCEPTED,
            }
        )

    async def _settle_b2b(self, payment: B2BPayment) -> None:
        await asyncio.sleep(self.callback_delay)
        scripted = B2B_OUTCOMES.get(payment.account_reference, B2B_SUCCESS)
        if await self._settle(payment, scripted, self.b2b_funds):
            self.b2b_funds -= payment.amount
        if payment.result is not None and payment.result.delivery is Delivery.RESULT:
            await self._deliver(payment.result_url, self._b2b_result(payment))

    def _b2b_result(self, payment: B2BPayment) -> dict[str, Any]:
        result = self._result_head(payment)
        assert payment.result is not None
        assert payment.completed_at is not None
        if payment.result.succeeded:
            balance = f"Working Account|KES|{self.b2b_funds:.2f}|{self.b2b_funds:.2f}|0.00|0.00"
            result["ResultParameters"] = {
                "ResultParameter": [
                    {"Key": "DebitAccountBalance", "Value": balance},
                    {"Key": "Amount", "Value": payment.amount},
                    {"Key": "DebitPartyAffectedAccountBalance", "Value": balance},
                    {"Key": "TransCompletedTime", "Value": int(daraja_timestamp(payment.completed_at))},
                    {"Key": "DebitPartyCharges", "Value": ""},
                    {"Key": "ReceiverPartyPublicName", "Value": f"{payment.party_b} - {_PAYBILL_NAME}"},
                    {"Key": "Currency", "Value": "KES"},
                    {"Key": "InitiatorAccountCurrentBalance", "Value": balance},
                ]
            }
        references = [
            {"Key": "BillReferenceNumber", "Value": payment.account_reference},
            {"Key": "QueueTimeoutURL", "Value": payment.queue_timeout_url},
        ]
        if payment.occasion:
            references.append({"Key": "Occasion", "Value": payment.occasion})
        result["ReferenceData"] = {"ReferenceItem": references}
        return {"Result": result}
