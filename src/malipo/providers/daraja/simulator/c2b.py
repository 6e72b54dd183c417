"""C2B in the simulator: URL registration per shortcode (v1 and v2), and the sandbox's simulate,
which plays M-Pesa: it calls the ValidationURL (waiting at most ``validation_timeout`` seconds,
then applying the registered ``ResponseType``) and, when the payment goes ahead, the
ConfirmationURL. Every payment it completes is kept as a receipt (:func:`c2b_receipts`), the
statement a reconciliation reads.

- Register: ``POST /mpesa/c2b/v{1,2}/registerurl`` checks ``ShortCode``, ``ResponseType``
  (exactly ``Completed`` or ``Cancelled``) and both URLs (http(s), none of Daraja's forbidden
  words: ``400.002.02``). Registering again replaces the URLs (the sandbox allows it) unless the
  simulator is built with ``c2b_production=True``: then ``500.003.1001`` "Urls are already
  registered", as production answers.
- Simulate: ``POST /mpesa/c2b/v{1,2}/simulate`` with ``ShortCode``, ``CommandID``
  (``CustomerPayBillOnline`` | ``CustomerBuyGoodsOnline``), ``Amount`` (whole shillings),
  ``Msisdn`` and ``BillRefNumber`` (paybill). A shortcode with no registered URLs completes
  silently (M-Pesa does). v2 bodies carry a masked MSISDN (``2547 ***** 126``), v1 its SHA-256.
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from malipo.core.logging import get_logger
from malipo.providers.daraja.c2b import RESPONSE_TYPES, forbidden_word
from malipo.providers.daraja.schemas import INVALID_REQUEST
from malipo.providers.daraja.simulator.base import SimulatorBase
from malipo.providers.daraja.simulator.checks import (
    _MSISDN,
    _SHORTCODE,
    _amount,
    _eat,
    _invalid,
    _json_object,
    _matching,
    _receipt,
    _Rejected,
    _request_id,
    _text,
    _url,
)

log = get_logger("malipo.providers.daraja.simulator")

COMMAND_IDS = {"CustomerPayBillOnline": "Pay Bill", "CustomerBuyGoodsOnline": "Buy Goods"}
ALREADY_REGISTERED = "500.003.1001"


@dataclass(slots=True)
class C2bUrls:
    """A shortcode's registered URLs."""

    short_code: str
    version: str  # "v1" | "v2"
    response_type: str
    validation_url: str
    confirmation_url: str
    registered_at: datetime


@dataclass(slots=True)
class C2bReceipt:
    """One simulated payer's payment: what validation said and whether it completed."""

    trans_id: str
    short_code: str
    command_id: str
    amount: int  # whole shillings
    msisdn: str
    bill_ref_number: str
    version: str
    created_at: datetime
    # "accepted", a C2B000xx code, "timeout" (then ResponseType applied), "no-validation".
    validation: str | None = None
    completed: bool | None = None  # None until decided; False: rejected or cancelled
    confirmed: bool = False  # the ConfirmationURL took it
    org_account_balance: int = 0  # the shortcode's balance after it, in shillings
    completed_at: datetime | None = None
    body: dict[str, Any] = field(default_factory=dict)


def c2b_receipts(simulator: Any) -> list[C2bReceipt]:
    """The C2B payments the simulator completed (money arrived at the shortcode), oldest first."""
    return [r for r in list(simulator.c2b_payments.values()) if r.completed]


def masked_msisdn(msisdn: str) -> str:
    """``254708374126`` as C2B v2 shows it: ``2547 ***** 126``."""
    return f"{msisdn[:4]} ***** {msisdn[-3:]}"


class C2bHandlers(SimulatorBase):
    validation_timeout: float = 8.0
    c2b_production: bool = False

    def _c2b_state(self) -> None:
        if not hasattr(self, "c2b_urls"):
            self.c2b_urls: dict[str, C2bUrls] = {}
            self.c2b_registrations: list[C2bUrls] = []
            self.c2b_payments: dict[str, C2bReceipt] = {}
            self.c2b_balances: dict[str, int] = {}

    def _routes(self) -> list[Route]:
        self._c2b_state()
        return [
            *super()._routes(),
            Route("/mpesa/c2b/v1/registerurl", self._c2b_register, methods=["POST"]),
            Route("/mpesa/c2b/v2/registerurl", self._c2b_register, methods=["POST"]),
            Route("/mpesa/c2b/v1/simulate", self._c2b_simulate, methods=["POST"]),
            Route("/mpesa/c2b/v2/simulate", self._c2b_simulate, methods=["POST"]),
        ]

    @staticmethod
    def _version(request: Request) -> str:
        return "v1" if "/v1/" in request.url.path else "v2"

    async def _c2b_register(self, request: Request) -> JSONResponse:
        self._authorise(request)
        body = await _json_object(request)
        short_code = _matching(body, "ShortCode", _SHORTCODE)
        response_type = _text(body, "ResponseType")
        if response_type not in RESPONSE_TYPES:
            _invalid("ResponseType")
        urls = {}
        for name in ("ValidationURL", "ConfirmationURL"):
            urls[name] = _url(body, name)
            if forbidden_word(urls[name]) is not None:
                _invalid(name)
        if self.c2b_production and short_code in self.c2b_urls:
            raise _Rejected(500, ALREADY_REGISTERED, "Urls are already registered")
        registered = C2bUrls(
            short_code, self._version(request), response_type, urls["ValidationURL"], urls["ConfirmationURL"],
            self._now(),
        )  # fmt: skip
        self.c2b_urls[short_code] = registered
        self.c2b_registrations.append(registered)
        log.info("daraja_sim.c2b.registered", short_code=short_code, response_type=response_type)
        return JSONResponse(
            {"OriginatorCoversationID": _request_id(), "ResponseCode": "0", "ResponseDescription": "Success"}
        )

    async def _c2b_simulate(self, request: Request) -> JSONResponse:
        self._authorise(request)
        body = await _json_object(request)
        short_code = _matching(body, "ShortCode", _SHORTCODE)
        command_id = _text(body, "CommandID")
        if command_id not in COMMAND_IDS:
            raise _Rejected(400, INVALID_REQUEST, "Bad Request - Invalid CommandID")
        amount = _amount(body)
        msisdn = _matching(body, "Msisdn", _MSISDN)
        bill_ref = (
            _text(body, "BillRefNumber", required=False, max_length=20)
            if command_id != "CustomerBuyGoodsOnline"
            else ""
        )
        receipt = C2bReceipt(
            trans_id=self._new_trans_id(), short_code=short_code, command_id=command_id, amount=amount,
            msisdn=msisdn, bill_ref_number=bill_ref, version=self._version(request), created_at=self._now(),
        )  # fmt: skip
        self.c2b_payments[receipt.trans_id] = receipt
        self._spawn(self._c2b_pay(receipt), "c2b")
        log.info("daraja_sim.c2b.simulated", short_code=short_code, amount=amount, trans_id=receipt.trans_id)
        if receipt.version == "v1":
            conversation = _request_id()
            return JSONResponse(
                {"ConversationID": f"AG_{conversation}", "OriginatorConversationID": conversation,
                 "ResponseDescription": "Accept the service request successfully."}
            )  # fmt: skip
        return JSONResponse(
            {"OriginatorCoversationID": _request_id(), "ResponseCode": "0",
             "ResponseDescription": "Accept the service request successfully."}
        )  # fmt: skip

    def _new_trans_id(self) -> str:
        while True:
            candidate = _receipt()
            if candidate not in self.c2b_payments:
                return candidate

    def _c2b_body(self, receipt: C2bReceipt, *, balance: str) -> dict[str, Any]:
        if receipt.version == "v1":
            msisdn = hashlib.sha256(receipt.msisdn.encode()).hexdigest()
        else:
            msisdn = masked_msisdn(receipt.msisdn)
        return {
            "TransactionType": COMMAND_IDS[receipt.command_id],
            "TransID": receipt.trans_id,
            "TransTime": f"{_eat(receipt.created_at):%Y%m%d%H%M%S}",
            "TransAmount": f"{Decimal(receipt.amount):.2f}",
            "BusinessShortCode": receipt.short_code,
            "BillRefNumber": receipt.bill_ref_number,
            "InvoiceNumber": "",
            "OrgAccountBalance": balance,
            "ThirdPartyTransID": "",
            "MSISDN": msisdn,
            "FirstName": "JOHN",
            "MiddleName": "",
            "LastName": "",
        }

    async def _c2b_pay(self, receipt: C2bReceipt) -> None:
        await asyncio.sleep(self.callback_delay)
        urls = self.c2b_urls.get(receipt.short_code)
        if urls is None:  # no URLs registered: M-Pesa completes silently
            receipt.validation = "no-validation"
            self._c2b_complete(receipt)
            return
        body = self._c2b_body(receipt, balance="")
        go_ahead, third_party = await self._c2b_validate(urls, receipt, body)
        if not go_ahead:
            receipt.completed = False
            return
        self._c2b_complete(receipt)
        confirmation = self._c2b_body(receipt, balance=f"{Decimal(receipt.org_account_balance):.2f}")
        if third_party:
            confirmation["ThirdPartyTransID"] = third_party
        receipt.body = confirmation
        await self._deliver(urls.confirmation_url, confirmation)
        receipt.confirmed = any(d.delivered for d in self.deliveries if d.body is confirmation)

    async def _c2b_validate(
        self, urls: C2bUrls, receipt: C2bReceipt, body: dict[str, Any]
    ) -> tuple[bool, str]:
        """Whether the payment goes ahead, and the ThirdPartyTransID the validation returned."""
        try:
            response = await self._callback_client().post(
                urls.validation_url, json=body, timeout=self.validation_timeout
            )
            reply = response.json() if response.is_success else None
        except (httpx.HTTPError, ValueError):
            reply = None
        if not isinstance(reply, dict) or "ResultCode" not in reply:
            receipt.validation = "timeout"
            return urls.response_type == "Completed", ""
        code = str(reply["ResultCode"])
        receipt.validation = "accepted" if code == "0" else code
        return code == "0", str(reply.get("ThirdPartyTransID") or "")

    def _c2b_complete(self, receipt: C2bReceipt) -> None:
        balance = self.c2b_balances.get(receipt.short_code, 0) + receipt.amount
        self.c2b_balances[receipt.short_code] = balance
        receipt.org_account_balance = balance
        receipt.completed = True
        receipt.completed_at = self._now()
        statement = getattr(self, "statement", None)  # the shortcode's statement (reconciliation, reversal)
        if statement is not None:
            kind = "Pay Bill" if receipt.command_id == "CustomerPayBillOnline" else "Buy Goods"
            statement.record_incoming(
                shortcode=receipt.short_code, receipt=receipt.trans_id, amount=receipt.amount,
                msisdn=receipt.msisdn, completed_at=receipt.completed_at,
                bill_reference=receipt.bill_ref_number, kind=kind,
            )  # fmt: skip
