"""M-Pesa Express: the STK push, its simulated customer, and the STK query."""

from __future__ import annotations

import asyncio
import base64
import binascii
import secrets
from datetime import datetime, timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from malipo.core.logging import get_logger
from malipo.providers.daraja.schemas import (
    BUY_GOODS,
    PAYBILL,
    PROCESSING_ERROR,
    daraja_timestamp,
    stk_password,
)
from malipo.providers.daraja.simulator.base import SimulatorBase
from malipo.providers.daraja.simulator.checks import (
    _MSISDN,
    _SHORTCODE,
    _amount,
    _eat,
    _invalid,
    _json_object,
    _matching,
    _merchant_request_id,
    _receipt,
    _Rejected,
    _text,
    _timestamp,
    _url,
)
from malipo.providers.daraja.simulator.outcomes import (
    _STK_ACCEPTED,
    _STK_QUERY_ACCEPTED,
    STK_INSUFFICIENT_FROM,
    STK_OUTCOMES,
    STK_SUCCESS,
    Delivery,
)
from malipo.providers.daraja.simulator.records import StkPush

log = get_logger("malipo.providers.daraja.simulator")


class StkHandlers(SimulatorBase):
    # ------------------------------------------------------------------ STK push and query

    def _check_password(self, shortcode: str, password: str, timestamp: str) -> None:
        passkey = self.passkeys.get(shortcode)
        if passkey is not None:
            if not secrets.compare_digest(
                password.encode(), stk_password(shortcode, passkey, timestamp).encode()
            ):
                raise _Rejected(500, PROCESSING_ERROR, "Wrong credentials")
            return
        if self.strict_passkeys:
            raise _Rejected(500, PROCESSING_ERROR, "Merchant does not exist")
        # Any passkey, but the password must still be shortcode + passkey + timestamp.
        try:
            decoded = base64.b64decode(password, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            decoded = ""
        if not (
            decoded.startswith(shortcode)
            and decoded.endswith(timestamp)
            and len(decoded) > len(shortcode) + len(timestamp)
        ):
            raise _Rejected(500, PROCESSING_ERROR, "Wrong credentials")

    async def _stk_push(self, request: Request) -> JSONResponse:
        self._authorise(request)
        body = await _json_object(request)
        shortcode = _matching(body, "BusinessShortCode", _SHORTCODE)
        password = _text(body, "Password")
        timestamp = _timestamp(body)
        transaction_type = _text(body, "TransactionType")
        if transaction_type not in (PAYBILL, BUY_GOODS):
            _invalid("TransactionType")
        amount = _amount(body)
        phone = _matching(body, "PhoneNumber", _MSISDN)
        _matching(body, "PartyA", _MSISDN)
        party_b = _matching(body, "PartyB", _SHORTCODE)
        callback_url = _url(body, "CallBackURL")
        account_reference = _text(body, "AccountReference", max_length=12)
        _text(body, "TransactionDesc", max_length=182)
        self._check_password(shortcode, password, timestamp)

        outcome = STK_OUTCOMES.get(phone)
        if outcome is None:
            outcome = STK_OUTCOMES["254700000003"] if amount >= STK_INSUFFICIENT_FROM else STK_SUCCESS
        now = self._now()
        push = StkPush(
            merchant_request_id=_merchant_request_id(),
            checkout_request_id=self._checkout_request_id(now, phone),
            shortcode=shortcode,
            transaction_type=transaction_type,
            party_b=party_b,
            phone=phone,
            amount=amount,
            account_reference=account_reference,
            callback_url=callback_url,
            outcome=outcome,
            created_at=now,
        )
        self.stk_pushes[push.checkout_request_id] = push
        self._spawn(self._settle_stk(push), "stk")
        log.info(
            "daraja_sim.stk.accepted",
            checkout_request_id=push.checkout_request_id,
            amount=amount,
            result_code=outcome.result_code,
            delivery=outcome.delivery.value,
        )
        return JSONResponse(
            {
                "MerchantRequestID": push.merchant_request_id,
                "CheckoutRequestID": push.checkout_request_id,
                "ResponseCode": "0",
                "ResponseDescription": _STK_ACCEPTED,
                "CustomerMessage": _STK_ACCEPTED,
            }
        )

    def _checkout_request_id(self, now: datetime, phone: str) -> str:
        """``ws_CO_`` + DDMMYYYYHHmmss + milliseconds + the phone's last nine digits, as Daraja's look."""
        stamp = f"{_eat(now):%d%m%Y%H%M%S}"
        millis = now.microsecond // 1000
        for step in range(1000):
            candidate = f"ws_CO_{stamp}{(millis + step) % 1000:03d}{phone[3:]}"
            if candidate not in self.stk_pushes:
                return candidate
        return f"ws_CO_{stamp}{secrets.randbelow(1000):03d}{phone[3:]}{secrets.token_hex(2)}"

    async def _settle_stk(self, push: StkPush) -> None:
        await asyncio.sleep(self.callback_delay)
        outcome = push.outcome
        if outcome.delivery is Delivery.UNANSWERED:
            return  # the prompt just expires; STK query tells (see _stk_query)
        push.result = outcome
        push.completed_at = self._now()
        if outcome.succeeded:
            push.receipt = _receipt()
            self.statement.record_incoming(
                shortcode=push.shortcode, receipt=push.receipt, amount=push.amount, msisdn=push.phone,
                completed_at=push.completed_at, bill_reference=push.account_reference,
            )  # fmt: skip
        if outcome.delivery is Delivery.RESULT:
            await self._deliver(push.callback_url, self._stk_callback(push))

    def _stk_callback(self, push: StkPush) -> dict[str, Any]:
        assert push.result is not None
        callback: dict[str, Any] = {
            "MerchantRequestID": push.merchant_request_id,
            "CheckoutRequestID": push.checkout_request_id,
            "ResultCode": push.result.result_code,
            "ResultDesc": push.result.result_desc,
        }
        if push.result.succeeded:
            assert push.completed_at is not None
            callback["CallbackMetadata"] = {
                "Item": [
                    {"Name": "Amount", "Value": push.amount},
                    {"Name": "MpesaReceiptNumber", "Value": push.receipt},
                    {"Name": "Balance"},
                    {"Name": "TransactionDate", "Value": int(daraja_timestamp(push.completed_at))},
                    {"Name": "PhoneNumber", "Value": int(push.phone)},
                ]
            }
        return {"Body": {"stkCallback": callback}}

    async def _stk_query(self, request: Request) -> JSONResponse:
        self._authorise(request)
        body = await _json_object(request)
        shortcode = _matching(body, "BusinessShortCode", _SHORTCODE)
        password = _text(body, "Password")
        timestamp = _timestamp(body)
        checkout_request_id = _text(body, "CheckoutRequestID")
        self._check_password(shortcode, password, timestamp)
        push = self.stk_pushes.get(checkout_request_id)
        if push is None or push.shortcode != shortcode:
            _invalid("CheckoutRequestID")
        result = push.result
        if result is None:
            expired = push.created_at + timedelta(seconds=self.stk_expiry) <= self._now()
            if not (push.outcome.delivery is Delivery.UNANSWERED and expired):
                raise _Rejected(
                    500, PROCESSING_ERROR, "The transaction is being processed", push.checkout_request_id
                )
            push.result = result = push.outcome
            push.completed_at = self._now()
        return JSONResponse(
            {
                "ResponseCode": "0",
                "ResponseDescription": _STK_QUERY_ACCEPTED,
                "MerchantRequestID": push.merchant_request_id,
                "CheckoutRequestID": push.checkout_request_id,
                "ResultCode": str(result.result_code),
                "ResultDesc": result.result_desc if result.succeeded else f"[STK_CB - ]{result.result_desc}",
            }
        )
