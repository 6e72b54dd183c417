"""The simulator's statement: 48 hours of what each shortcode received, served by Pull
Transactions (``/pulltransactions/v1/register`` and ``/query``), with sandbox controls under
``/_sim/statement/…`` to plant a day's exceptions.

Every successful STK push payment is recorded here (``record_incoming``: receipt, amount, payer,
time, bill reference); C2B paybill payments are recorded the same way. The controls change only
the statement, never the payments the simulator made:

- ``POST /_sim/statement/extra`` ``{"ShortCode", "Amount", "MSISDN", "BillRefNumber"?}`` — a receipt
  malipo never saw (answers ``{"TransactionID": …}``);
- ``POST /_sim/statement/remove`` ``{"TransactionID"}`` — a receipt taken off the statement;
- ``POST /_sim/statement/amount`` ``{"TransactionID", "Amount"}`` — its amount changed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from malipo.providers.daraja.pull import (
    ALREADY_REGISTERED,
    FOUND,
    KENYA,
    NO_TRANSACTIONS,
    PAGE_SIZE,
    REGISTERED,
    WINDOW,
    parse_kenya_time,
)
from malipo.providers.daraja.simulator.base import SimulatorBase
from malipo.providers.daraja.simulator.checks import (
    _SHORTCODE,
    _invalid,
    _json_object,
    _matching,
    _receipt,
    _request_id,
    _text,
    _url,
)

PAYBILL_DEBIT = "c2b-pay-bill-debit"
_ALREADY = "Shortcode already registered"
_REGISTERED_DESC = "Shortcode Registered Successfully"


@dataclass(slots=True)
class StatementRow:
    shortcode: str
    receipt: str
    amount: Decimal  # shillings
    msisdn: str
    completed_at: datetime
    bill_reference: str
    kind: str = PAYBILL_DEBIT

    def wire(self) -> dict[str, Any]:
        return {
            "transactionId": self.receipt,
            "trxDate": self.completed_at.astimezone(KENYA).replace(tzinfo=None).isoformat(timespec="seconds"),
            "msisdn": int(self.msisdn) if self.msisdn.isdigit() else self.msisdn,
            "sender": "UAT2",
            "transactiontype": self.kind,
            "billreference": self.bill_reference,
            "amount": f"{self.amount:.2f}",
            "organizationname": "malipo simulator",
        }


class StatementBook:
    """What each shortcode received in the last 48 hours (``clock`` decides what is older)."""

    def __init__(self) -> None:
        self.rows: dict[str, StatementRow] = {}
        self.registered: dict[str, dict[str, str]] = {}

    def record_incoming(
        self, *, shortcode: str, receipt: str, amount: Decimal | int, msisdn: str, completed_at: datetime,
        bill_reference: str = "", kind: str = PAYBILL_DEBIT,
    ) -> StatementRow:  # fmt: skip
        """Keep a payment the shortcode received; older rows than 48 hours are dropped."""
        row = StatementRow(shortcode, receipt, Decimal(amount), msisdn, completed_at, bill_reference, kind)
        self.rows[receipt] = row
        oldest = completed_at - WINDOW
        for stale in [key for key, kept in self.rows.items() if kept.completed_at < oldest]:
            del self.rows[stale]
        return row

    def between(self, shortcode: str, start: datetime, end: datetime) -> list[StatementRow]:
        found = [r for r in self.rows.values() if r.shortcode == shortcode and start <= r.completed_at <= end]
        return sorted(found, key=lambda r: (r.completed_at, r.receipt))


def _shillings(body: dict[str, Any], name: str = "Amount") -> Decimal:
    try:
        amount = Decimal(str(body.get(name)))
    except InvalidOperation:
        _invalid(name)
    if not amount.is_finite() or amount <= 0:
        _invalid(name)
    return amount


class StatementHandlers(SimulatorBase):
    """Pull Transactions and the statement's sandbox controls."""

    def __init__(self, **options: Any) -> None:
        self.statement = StatementBook()
        super().__init__(**options)

    def _routes(self) -> list[Route]:
        return [
            *super()._routes(),
            Route("/pulltransactions/v1/register", self._pull_register, methods=["POST"]),
            Route("/pulltransactions/v1/query", self._pull_query, methods=["POST"]),
            Route("/_sim/statement/extra", self._plant_extra, methods=["POST"]),
            Route("/_sim/statement/remove", self._plant_removal, methods=["POST"]),
            Route("/_sim/statement/amount", self._plant_amount, methods=["POST"]),
        ]

    async def _pull_register(self, request: Request) -> JSONResponse:
        self._authorise(request)
        body = await _json_object(request)
        shortcode = _matching(body, "ShortCode", _SHORTCODE)
        if _text(body, "RequestType") != "Pull":
            _invalid("RequestType")
        registration = {
            "NominatedNumber": _text(body, "NominatedNumber"),
            "CallBackURL": _url(body, "CallBackURL"),
        }
        known = shortcode in self.statement.registered
        self.statement.registered.setdefault(shortcode, registration)
        return JSONResponse({
            "ResponseRefID": _request_id(), "ResponseStatus": ALREADY_REGISTERED if known else REGISTERED,
            "ShortCode": shortcode,
            "ResponseDescription": _ALREADY if known else _REGISTERED_DESC,
        })  # fmt: skip

    async def _pull_query(self, request: Request) -> JSONResponse:
        self._authorise(request)
        body = await _json_object(request)
        shortcode = _matching(body, "ShortCode", _SHORTCODE)
        try:
            start = parse_kenya_time(_text(body, "StartDate"))
        except ValueError:
            _invalid("StartDate")
        try:
            end = parse_kenya_time(_text(body, "EndDate"))
        except ValueError:
            _invalid("EndDate")
        offset_text = str(body.get("OffSetValue", "0"))
        if not offset_text.isdigit():
            _invalid("OffSetValue")
        if start < self._now() - WINDOW - timedelta(minutes=1) or end < start:
            _invalid("StartDate")  # older than the rail keeps
        rows = self.statement.between(shortcode, start, end)
        page = rows[int(offset_text) : int(offset_text) + PAGE_SIZE]
        if not page:
            return JSONResponse({
                "ResponseRefID": _request_id(), "ResponseCode": NO_TRANSACTIONS,
                "ResponseMessage": "No transactions found", "Response": [[]],
            })  # fmt: skip
        return JSONResponse({
            "ResponseRefID": _request_id(), "ResponseCode": FOUND, "ResponseMessage": "Success",
            "Response": [[row.wire() for row in page]],
        })  # fmt: skip

    # ------------------------------------------------------------------ sandbox controls

    async def _plant_extra(self, request: Request) -> JSONResponse:
        body = await _json_object(request)
        moment = body.get("TransTime")
        row = self.statement.record_incoming(
            shortcode=_matching(body, "ShortCode", _SHORTCODE), receipt=_receipt(), amount=_shillings(body),
            msisdn=_text(body, "MSISDN"), bill_reference=str(body.get("BillRefNumber") or ""),
            completed_at=datetime.fromisoformat(moment) if isinstance(moment, str) else self._now(),
        )  # fmt: skip
        return JSONResponse({"TransactionID": row.receipt})

    def _row(self, body: dict[str, Any]) -> StatementRow:
        row = self.statement.rows.get(_text(body, "TransactionID"))
        if row is None:
            _invalid("TransactionID")
        return row

    async def _plant_removal(self, request: Request) -> JSONResponse:
        row = self._row(await _json_object(request))
        del self.statement.rows[row.receipt]
        return JSONResponse({"TransactionID": row.receipt, "removed": True})

    async def _plant_amount(self, request: Request) -> JSONResponse:
        body = await _json_object(request)
        row = self._row(body)
        row.amount = _shillings(body)
        return JSONResponse({"TransactionID": row.receipt, "Amount": f"{row.amount:.2f}"})
